#include "users.h"
