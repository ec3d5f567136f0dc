#pragma once
/// \file
/// The memory tier's entry node and the intrusive structures that link it: the per-shard hash table, the
/// LRU lists of the eviction policy and the expiry heap. Only TypedNode knows the stored type.

#include <algorithm>
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <typeinfo>
#include <utility>
#include <vector>

#include <hitbox/core/detail/type_name.hpp>
#include <hitbox/core/key.hpp>
#include <hitbox/core/value.hpp>

namespace hitbox::detail {

inline constexpr std::int64_t no_expiry = std::numeric_limits<std::int64_t>::max();
inline constexpr std::uint32_t not_in_heap = std::numeric_limits<std::uint32_t>::max();

/// Where a node sits in the W-TinyLFU policy.
enum class Segment : std::uint8_t { none, window, probation, protect };

/// The type-independent part of an entry. The fields a hit reads come first; readers touch `hash_next`,
/// `hash`, `key`, `expire_ms`, `type`, `accessed` and `frequency` under the shard's shared lock,
/// everything else changes only under its exclusive lock. (Putting the policy fields first, so that the
/// read fields run straight into the value, measured 15% slower per hit.)
struct NodeBase {
    using Destroy = void (*)(NodeBase*) noexcept;

    NodeBase(const CacheKey& k, std::uint64_t h, std::int64_t expire, std::size_t b, std::size_t w,
             const std::type_info& t, Destroy d)
        : hash(h), key(k), expire_ms(expire), type(&t), bytes(b), weight(w), destroy(d) {}
    NodeBase(const NodeBase&) = delete;
    NodeBase& operator=(const NodeBase&) = delete;

    NodeBase* hash_next = nullptr;
    std::uint64_t hash;
    CacheKey key;
    std::int64_t expire_ms;
    const std::type_info* type;
    /// Set by readers on a hit, cleared by the policy when it gives the node its second chance.
    mutable std::atomic<bool> accessed{false};
    /// Accesses while stored (saturating at 15, halved with the sketch); readers bump it with a plain
    /// load and store, so concurrent hits may count once: it is an estimate.
    mutable std::atomic<std::uint8_t> frequency{1};
    Segment segment = Segment::none;
    std::uint32_t heap_index = not_in_heap;
    NodeBase* prev = nullptr;
    NodeBase* next = nullptr;
    std::size_t bytes;   ///< what the weigher said (reported as weighted_bytes)
    std::size_t weight;  ///< what the bound counts: 1 per entry, or `bytes` under max_bytes
    Destroy destroy;

    bool expired_at(std::int64_t now_ms) const noexcept { return expire_ms <= now_ms; }

    void count_access() const noexcept {
        const std::uint8_t f = frequency.load(std::memory_order_relaxed);
        if (f < 15) frequency.store(static_cast<std::uint8_t>(f + 1), std::memory_order_relaxed);
        if (!accessed.load(std::memory_order_relaxed)) accessed.store(true, std::memory_order_relaxed);
    }
};

/// An entry holding a CacheValue<T> inline: a hit copies it out, with no decoding.
template <class T>
struct TypedNode final : NodeBase {
    template <class V>
    TypedNode(const CacheKey& k, std::uint64_t h, std::int64_t expire, std::size_t b, std::size_t w, V&& v)
        : NodeBase(k, h, expire, b, w, typeid(T), &destroy_node), value(std::forward<V>(v)) {}

    CacheValue<T> value;

    static void destroy_node(NodeBase* n) noexcept { delete static_cast<TypedNode*>(n); }
};

inline bool same_type(const std::type_info& a, const std::type_info& b) noexcept { return &a == &b || a == b; }

/// Intrusive doubly linked list in MRU (head) to LRU (tail) order, with the summed weight of its nodes.
struct NodeList {
    NodeBase* head = nullptr;
    NodeBase* tail = nullptr;
    std::size_t weight = 0;

    bool empty() const noexcept { return head == nullptr; }

    void push_front(NodeBase* n) noexcept {
        n->prev = nullptr;
        n->next = head;
        if (head != nullptr) head->prev = n;
        head = n;
        if (tail == nullptr) tail = n;
        weight += n->weight;
    }

    void unlink(NodeBase* n) noexcept {
        (n->prev != nullptr ? n->prev->next : head) = n->next;
        (n->next != nullptr ? n->next->prev : tail) = n->prev;
        n->prev = n->next = nullptr;
        weight -= n->weight;
    }

    /// Puts `fresh` where `old` is, keeping the recency position (used by overwrites).
    void replace(NodeBase* old, NodeBase* fresh) noexcept {
        fresh->prev = old->prev;
        fresh->next = old->next;
        (old->prev != nullptr ? old->prev->next : head) = fresh;
        (old->next != nullptr ? old->next->prev : tail) = fresh;
        old->prev = old->next = nullptr;
        weight = weight - old->weight + fresh->weight;
    }
};

/// Separate-chaining hash table of nodes, chained through NodeBase::hash_next. Indexed by the low bits of
/// the mixed hash (the shard index uses the high bits).
class NodeTable {
public:
    NodeTable() : buckets_(16, nullptr) {}

    NodeBase* find(const CacheKey& key, std::uint64_t h) const noexcept {
        for (NodeBase* n = buckets_[h & mask()]; n != nullptr; n = n->hash_next)
            if (n->hash == h && n->key == key) return n;
        return nullptr;
    }

    /// Inserts a node whose key is not present. Keeps the load at or under one half, so a lookup rarely
    /// follows a chain into a node that is not the one it wants (each such step is a cache miss).
    void insert(NodeBase* n) {
        if (2 * (size_ + 1) > buckets_.size()) rehash(buckets_.size() * 2);
        NodeBase*& head = buckets_[n->hash & mask()];
        n->hash_next = head;
        head = n;
        ++size_;
    }

    void erase(NodeBase* n) noexcept {
        for (NodeBase** link = &buckets_[n->hash & mask()]; *link != nullptr; link = &(*link)->hash_next) {
            if (*link == n) {
                *link = n->hash_next;
                n->hash_next = nullptr;
                --size_;
                return;
            }
        }
    }

    /// Puts `fresh` in the chain position of `old` (same key).
    void replace(NodeBase* old, NodeBase* fresh) noexcept {
        for (NodeBase** link = &buckets_[old->hash & mask()]; *link != nullptr; link = &(*link)->hash_next) {
            if (*link == old) {
                fresh->hash_next = old->hash_next;
                *link = fresh;
                old->hash_next = nullptr;
                return;
            }
        }
    }

    /// Pre-sizes the bucket array for `entries` nodes.
    void reserve(std::size_t entries) {
        std::size_t want = 16;
        while (want < 2 * entries) want *= 2;
        if (want > buckets_.size()) rehash(want);
    }

    std::size_t size() const noexcept { return size_; }
    std::size_t bucket_count() const noexcept { return buckets_.size(); }

    template <class F>
    void for_each(F&& f) const {
        for (NodeBase* head : buckets_)
            for (NodeBase* n = head; n != nullptr;) {
                NodeBase* next = n->hash_next;
                f(n);
                n = next;
            }
    }

    void reset() noexcept {
        std::fill(buckets_.begin(), buckets_.end(), nullptr);
        size_ = 0;
    }

private:
    std::size_t mask() const noexcept { return buckets_.size() - 1; }

    void rehash(std::size_t count) {
        std::vector<NodeBase*> next(count, nullptr);
        for (NodeBase* head : buckets_)
            for (NodeBase* n = head; n != nullptr;) {
                NodeBase* following = n->hash_next;
                NodeBase*& slot = next[n->hash & (count - 1)];
                n->hash_next = slot;
                slot = n;
                n = following;
            }
        buckets_.swap(next);
    }

    std::vector<NodeBase*> buckets_;
    std::size_t size_ = 0;
};

/// Binary min-heap of nodes by expiry time; each node knows its index, so removal is O(log n).
class ExpiryHeap {
public:
    bool empty() const noexcept { return heap_.empty(); }
    NodeBase* top() const noexcept { return heap_.front(); }
    std::size_t size() const noexcept { return heap_.size(); }

    void push(NodeBase* n) {
        heap_.push_back(n);
        n->heap_index = static_cast<std::uint32_t>(heap_.size() - 1);
        sift_up(heap_.size() - 1);
    }

    void erase(NodeBase* n) noexcept {
        std::size_t i = n->heap_index;
        if (i == not_in_heap) return;
        n->heap_index = not_in_heap;
        NodeBase* last = heap_.back();
        heap_.pop_back();
        if (i == heap_.size()) return;
        heap_[i] = last;
        last->heap_index = static_cast<std::uint32_t>(i);
        sift_up(i);
        sift_down(last->heap_index);
    }

    void clear() noexcept { heap_.clear(); }

private:
    void place(std::size_t i, NodeBase* n) noexcept {
        heap_[i] = n;
        n->heap_index = static_cast<std::uint32_t>(i);
    }

    void sift_up(std::size_t i) noexcept {
        NodeBase* n = heap_[i];
        while (i > 0) {
            std::size_t parent = (i - 1) / 2;
            if (heap_[parent]->expire_ms <= n->expire_ms) break;
            place(i, heap_[parent]);
            i = parent;
        }
        place(i, n);
    }

    void sift_down(std::size_t i) noexcept {
        NodeBase* n = heap_[i];
        const std::size_t count = heap_.size();
        for (;;) {
            std::size_t child = 2 * i + 1;
            if (child >= count) break;
            if (child + 1 < count && heap_[child + 1]->expire_ms < heap_[child]->expire_ms) ++child;
            if (n->expire_ms <= heap_[child]->expire_ms) break;
            place(i, heap_[child]);
            i = child;
        }
        place(i, n);
    }

    std::vector<NodeBase*> heap_;
};

/// Nodes unlinked under a shard lock and destroyed after it is released, so freeing a large value does
/// not hold up the shard's readers.
class Graveyard {
public:
    Graveyard() = default;
    Graveyard(const Graveyard&) = delete;
    Graveyard& operator=(const Graveyard&) = delete;
    ~Graveyard() {
        for (std::size_t i = 0; i < count_; ++i) few_[i]->destroy(few_[i]);
        for (NodeBase* n : many_) n->destroy(n);
    }

    void add(NodeBase* n) {
        if (count_ < few_.size())
            few_[count_++] = n;
        else
            many_.push_back(n);
    }

private:
    std::array<NodeBase*, 8> few_{};
    std::size_t count_ = 0;
    std::vector<NodeBase*> many_;
};

}  // namespace hitbox::detail
