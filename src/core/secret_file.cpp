#include "secret_file.h"
