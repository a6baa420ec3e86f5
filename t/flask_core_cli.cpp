// Reads vector lines (t/unit/flask_ops.h) on stdin and answers each on stdout, one line each.
// Built and driven by t/test_flask_core_vectors.py.
#include <iostream>
#include <string>

#include "unit/flask_ops.h"

int main() {
  std::string line;
  while (std::getline(std::cin, line)) std::cout << flask_ops::run(line) << '\n';
  return 0;
}
