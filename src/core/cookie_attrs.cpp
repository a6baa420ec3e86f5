#include "cookie_attrs.h"
