#include "origin.h"
