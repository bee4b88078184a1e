// Working arrays of the workloads (the object pointers, the ring), mapped
// straight from the OS and touched before the RSS baseline is taken: they
// must neither come from an allocator under test nor show up in its RSS.
#pragma once

#include <sys/mman.h>

#include <cstddef>

namespace mslab::bench {

template <class T>
class ScratchArray {
 public:
  explicit ScratchArray(std::size_t n) noexcept : n_(n), bytes_(n * sizeof(T) == 0 ? 1 : n * sizeof(T)) {
    void* p = ::mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    data_ = p == MAP_FAILED ? nullptr : static_cast<T*>(p);
  }
  ~ScratchArray() {
    if (data_ != nullptr) ::munmap(data_, bytes_);
  }
  ScratchArray(const ScratchArray&) = delete;
  ScratchArray& operator=(const ScratchArray&) = delete;

  bool ok() const noexcept { return data_ != nullptr; }
  std::size_t size() const noexcept { return n_; }
  T& operator[](std::size_t i) noexcept { return data_[i]; }
  const T& operator[](std::size_t i) const noexcept { return data_[i]; }
  T* data() noexcept { return data_; }

 private:
  T* data_ = nullptr;
  std::size_t n_;
  std::size_t bytes_;
};

}  // namespace mslab::bench
