// A minimal JSON writer: objects, arrays, strings, numbers, booleans and
// null, pretty-printed with two-space indents. Strings are escaped per
// RFC 8259 and invalid UTF-8 becomes U+FFFD, so the output always parses.
// Non-finite numbers are written as null.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace mslab::bench {

class JsonWriter {
 public:
  void begin_object();
  void end_object();
  void begin_array();
  void end_array();
  /// The key of the next value inside an object.
  void key(std::string_view k);

  void value(std::string_view s);
  void value(const char* s) { value(std::string_view(s)); }
  void value(std::uint64_t v);
  void value(std::int64_t v);
  void value(double v);
  void value(bool v);
  void null();

  /// The document so far (complete once every object/array is closed).
  const std::string& str() const noexcept { return out_; }

  /// `s` as a JSON string literal, quotes included.
  static std::string quote(std::string_view s);

 private:
  void before_value();
  void close(char bracket);

  std::string out_;
  struct Level {
    bool first = true;
  };
  std::vector<Level> stack_;
  bool after_key_ = false;
};

}  // namespace mslab::bench
