// examples/two_tier.cpp written without hitbox, the way a user would otherwise write it: a mutex-guarded
// LRU map with expiry in front of Redis (hiredis, one blocking connection under a mutex), values as JSON
// (cereal) compressed with zstd, the same steps and checks. It is the baseline of the compile-time table in
// doc/performance.md (scripts/compile_cost.sh): what a program that does this by hand costs to compile.
// It is built and run against a real redis-server by `meson test` (suite examples), so it stays a working
// equivalent.
//
// Run: HITBOX_REDIS_URL=redis://127.0.0.1:6379/ ./two_tier_by_hand
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <future>
#include <iostream>
#include <list>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <hiredis/hiredis.h>
#include <zstd.h>
#include <cereal/archives/json.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/vector.hpp>

struct User {
    std::uint64_t id = 0;
    std::string name;
    std::vector<std::string> roles;
    template <class Archive>
    void serialize(Archive& ar) {
        ar(CEREAL_NVP(id), CEREAL_NVP(name), CEREAL_NVP(roles));
    }
};

using namespace std::chrono_literals;
using Clock = std::chrono::system_clock;

namespace {

int failures = 0;

void expect(bool ok, const std::string& what) {
    std::cout << (ok ? "  ok   " : "  FAIL ") << what << '\n';
    if (!ok) ++failures;
}

struct Entry {
    User value;
    Clock::time_point expire;
};

/// L1: an LRU map with per-entry expiry under one mutex.
class Lru {
public:
    explicit Lru(std::size_t capacity) : capacity_(capacity) {}

    std::optional<Entry> get(const std::string& key) {
        std::lock_guard<std::mutex> lk(mu_);
        auto it = index_.find(key);
        if (it == index_.end()) return std::nullopt;
        if (it->second->second.expire <= Clock::now()) {
            order_.erase(it->second);
            index_.erase(it);
            return std::nullopt;
        }
        order_.splice(order_.begin(), order_, it->second);
        return it->second->second;
    }

    void set(const std::string& key, Entry e) {
        std::lock_guard<std::mutex> lk(mu_);
        if (auto it = index_.find(key); it != index_.end()) {
            it->second->second = std::move(e);
            order_.splice(order_.begin(), order_, it->second);
            return;
        }
        order_.emplace_front(key, std::move(e));
        index_[key] = order_.begin();
        if (index_.size() > capacity_) {
            index_.erase(order_.back().first);
            order_.pop_back();
        }
    }

    bool remove(const std::string& key) {
        std::lock_guard<std::mutex> lk(mu_);
        auto it = index_.find(key);
        if (it == index_.end()) return false;
        order_.erase(it->second);
        index_.erase(it);
        return true;
    }

private:
    std::mutex mu_;
    std::size_t capacity_;
    std::list<std::pair<std::string, Entry>> order_;
    std::unordered_map<std::string, std::list<std::pair<std::string, Entry>>::iterator> index_;
};

/// L2: Redis through one blocking hiredis connection shared under a mutex; the expiry travels in front
/// of the JSON, both compressed with zstd.
class Remote {
public:
    explicit Remote(redisContext* c) : c_(c) {}
    ~Remote() { redisFree(c_); }

    bool set(const std::string& key, const Entry& e) {
        std::ostringstream os;
        {
            cereal::JSONOutputArchive ar(os);
            ar(cereal::make_nvp("value", e.value));
        }
        const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(e.expire.time_since_epoch()).count();
        const std::string plain = std::to_string(ms) + "\n" + os.str();
        std::string packed(ZSTD_compressBound(plain.size()), '\0');
        const auto n = ZSTD_compress(packed.data(), packed.size(), plain.data(), plain.size(), 3);
        if (ZSTD_isError(n)) return false;
        packed.resize(n);
        const auto ttl = std::chrono::duration_cast<std::chrono::milliseconds>(e.expire - Clock::now()).count();
        if (ttl <= 0) return remove(key), true;
        return ok(command("SET %b %b PX %lld", key.data(), key.size(), packed.data(), packed.size(),
                          static_cast<long long>(ttl)));
    }

    std::optional<Entry> get(const std::string& key) {
        redisReply* r = command("GET %b", key.data(), key.size());
        if (r == nullptr || r->type != REDIS_REPLY_STRING) {
            if (r) freeReplyObject(r);
            return std::nullopt;
        }
        std::string packed(r->str, r->len);
        freeReplyObject(r);
        const auto size = ZSTD_getFrameContentSize(packed.data(), packed.size());
        if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN || size > (64u << 20))
            return std::nullopt;
        std::string plain(size, '\0');
        if (ZSTD_isError(ZSTD_decompress(plain.data(), plain.size(), packed.data(), packed.size())))
            return std::nullopt;
        const auto nl = plain.find('\n');
        if (nl == std::string::npos) return std::nullopt;
        Entry e;
        try {
            e.expire = Clock::time_point(std::chrono::milliseconds(std::stoll(plain.substr(0, nl))));
            std::istringstream is(plain.substr(nl + 1));
            cereal::JSONInputArchive ar(is);
            ar(cereal::make_nvp("value", e.value));
        } catch (const std::exception&) {
            return std::nullopt;
        }
        return e;
    }

    bool remove(const std::string& key) {
        redisReply* r = command("DEL %b", key.data(), key.size());
        const bool existed = r && r->type == REDIS_REPLY_INTEGER && r->integer > 0;
        if (r) freeReplyObject(r);
        return existed;
    }

private:
    template <class... A>
    redisReply* command(const char* format, A... args) {
        std::lock_guard<std::mutex> lk(mu_);
        return static_cast<redisReply*>(redisCommand(c_, format, args...));
    }
    static bool ok(redisReply* r) {
        const bool good = r && r->type == REDIS_REPLY_STATUS;
        if (r) freeReplyObject(r);
        return good;
    }

    std::mutex mu_;
    redisContext* c_;
};

/// Read-through: L1, then Redis, refilling L1 with Redis's expiry. Returns the entry and who answered.
std::optional<std::pair<Entry, std::string>> lookup(Lru& l1, Remote& l2, const std::string& key) {
    if (auto e = l1.get(key)) return std::pair{std::move(*e), std::string("memory")};
    if (auto e = l2.get(key)) {
        l1.set(key, *e);
        return std::pair{std::move(*e), std::string("redis")};
    }
    return std::nullopt;
}

}  // namespace

int main() {
    const char* env_url = std::getenv("HITBOX_REDIS_URL");
    const std::string url = env_url && *env_url ? env_url : "redis://localhost:6379/";
    // redis://host:port/
    const auto hp = url.substr(url.find("//") + 2);
    const auto host = hp.substr(0, hp.find(':'));
    const int port = std::atoi(hp.substr(hp.find(':') + 1).c_str());
    timeval tv{2, 0};
    redisContext* c = redisConnectWithTimeout(host.c_str(), port, tv);
    if (c == nullptr || c->err) {
        std::cerr << "cannot connect to " << host << ':' << port << '\n';
        if (c) redisFree(c);
        return 1;
    }
    redisSetTimeout(c, tv);
    Remote l2(c);
    Lru l1(10'000);

    const std::string key = "two-tier-by-hand:user:v1:id=42&lang=en";
    const User ada{42, "Ada", {"admin", "ops"}};
    const auto now = Clock::now();

    std::cout << "write through both tiers\n";
    l1.set(key, Entry{ada, now + 60s});
    expect(l2.set(key, Entry{ada, now + 60s}), "stored in memory and redis");

    std::cout << "read: L1 answers\n";
    auto found = lookup(l1, l2, key);
    expect(found && found->second == "memory", "served by " + (found ? found->second : "?"));
    expect(found && found->first.value.name == "Ada", "value is Ada");

    std::cout << "L1 loses the entry: Redis answers and refills L1 with the remaining TTL\n";
    l1.remove(key);
    auto refilled = lookup(l1, l2, key);
    expect(refilled && refilled->second == "redis", "served by " + (refilled ? refilled->second : "?"));
    auto back_in_l1 = l1.get(key);
    const auto ms = [](Clock::time_point t) { return std::chrono::time_point_cast<std::chrono::milliseconds>(t); };
    expect(back_in_l1 && ms(back_in_l1->expire) == ms(now + 60s), "L1 expires when Redis does");

    std::cout << "race read: both tiers at once, first hit wins\n";
    auto remote = std::async(std::launch::async, [&] { return l2.get(key); });
    auto local = l1.get(key);
    auto far = remote.get();
    expect(local || far, std::string("served by ") + (local ? "memory" : far ? "redis" : "?"));

    std::cout << "delete from every tier\n";
    const bool a = l1.remove(key), b = l2.remove(key);
    expect(a && b, "removed");
    expect(!lookup(l1, l2, key), "a miss in both tiers");

    std::cout << (failures ? "two_tier_by_hand: FAILED\n" : "two_tier_by_hand: all good\n");
    return failures ? 1 : 0;
}
