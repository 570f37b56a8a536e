// The filters' per-request state, by type: what a filter carries from its
// on_request to its on_response, or hands to the filters after it
// (jwt_authn's verified claims, which rbac reads), lives here instead of in a
// new field of Exchange. Small objects sit in the exchange itself (no
// allocation); everything is destroyed when the exchange ends.
#pragma once

#include <array>
#include <cstddef>
#include <new>
#include <stdexcept>
#include <type_traits>
#include <utility>

namespace outrigger::http {

class FilterState {
 public:
  FilterState() = default;
  ~FilterState() { clear(); }
  FilterState(const FilterState&) = delete;
  FilterState& operator=(const FilterState&) = delete;

  // Makes the T of this request (replacing an earlier one).
  template <class T, class... Args>
  T& emplace(Args&&... args) {
    remove<T>();
    if (count_ == entries_.size()) throw std::logic_error("FilterState: too many state types in one request");
    constexpr std::size_t align = alignof(T);
    std::size_t at = (used_ + align - 1) / align * align;
    void* place = nullptr;
    bool inside = false;
    if (align <= alignof(std::max_align_t) && at + sizeof(T) <= kInline) {
      place = buffer_ + at;
      used_ = at + sizeof(T);
      inside = true;
    } else {
      place = ::operator new(sizeof(T));
    }
    T* object = new (place) T(std::forward<Args>(args)...);
    entries_[count_++] = Entry{&key<T>, object, inside, [](void* p, bool in) {
                                 static_cast<T*>(p)->~T();
                                 if (!in) ::operator delete(p);
                               }};
    return *object;
  }

  template <class T>
  T* get() {
    for (std::size_t i = 0; i < count_; ++i)
      if (entries_[i].type == &key<T>) return static_cast<T*>(entries_[i].object);
    return nullptr;
  }
  template <class T>
  const T* get() const {
    return const_cast<FilterState*>(this)->get<T>();
  }

  void clear() {
    while (count_ > 0) {
      auto& e = entries_[--count_];
      e.destroy(e.object, e.inside);
    }
    used_ = 0;
  }

 private:
  template <class T>
  void remove() {
    for (std::size_t i = 0; i < count_; ++i) {
      if (entries_[i].type != &key<T>) continue;
      entries_[i].destroy(entries_[i].object, entries_[i].inside);  // its inline bytes stay used until clear()
      entries_[i] = entries_[--count_];
      return;
    }
  }

  struct Entry {
    const void* type;
    void* object;
    bool inside;
    void (*destroy)(void*, bool);
  };
  template <class T>
  static constexpr char key = 0;  // one address per type, in every translation unit

  static constexpr std::size_t kInline = 256;
  alignas(std::max_align_t) std::byte buffer_[kInline];
  std::size_t used_ = 0;
  std::array<Entry, 8> entries_;  // the first count_ are in use (not zeroed: an exchange is made per request)
  std::size_t count_ = 0;
};

}  // namespace outrigger::http
