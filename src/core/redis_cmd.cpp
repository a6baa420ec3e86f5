#include "redis_cmd.h"
