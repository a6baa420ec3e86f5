#include "csrf.h"
