#pragma once

#include <c10/util/Exception.h>
#include <gtest/gtest.h>

#include <string>

/// Expects `statement` to throw c10::Error whose message (without backtrace) contains
/// `substring`; a crash, another exception or a different message fails the test.
#define EXPECT_ERROR_CONTAINS(statement, substring)                                                \
  do {                                                                                             \
    try {                                                                                          \
      statement;                                                                                   \
      ADD_FAILURE() << "expected an error containing '" << (substring) << "' from " << #statement; \
    } catch (const c10::Error& error) {                                                            \
      const std::string message = error.what_without_backtrace();                                  \
      EXPECT_NE(message.find(substring), std::string::npos)                                        \
          << "error message '" << message << "' lacks '" << (substring) << "'";                    \
    }                                                                                              \
  } while (0)
