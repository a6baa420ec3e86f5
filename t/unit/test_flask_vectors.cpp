// The Flask bridge core against vectors made by the real Flask, itsdangerous, Flask-Session,
// pickle and msgpack (t/unit/gen_flask_vectors.py; t/test_flask_core_vectors.py reruns them
// against freshly generated vectors).
#include <gtest/gtest.h>

#include "flask_ops.h"
#include "flask_vectors.h"

TEST(FlaskVectors, AllAgreeWithPython) {
  size_t n = 0;
  for (const auto& v : kFlaskVectors) {
    const std::string got = flask_ops::run(v.op);
    EXPECT_EQ(got, v.want) << "op: " << std::string(v.op).substr(0, 400);
    n++;
  }
  EXPECT_GT(n, 100u);
}
