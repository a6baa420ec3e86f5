#include "sentinel.h"
