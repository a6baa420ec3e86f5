#include "rate_limit.h"
