// detail::ReplyPipe without any socket: bytes fed in pieces split at every boundary reach their batches
// in FIFO order, interleaved callers never get each other's replies, the budget refuses what does not fit,
// a reply nobody asked for is reported, and secrets are scrubbed from server text.
#include <catch2/catch.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <hitbox/backend/redis/detail/reply_pipe.hpp>

using hitbox::ErrorKind;
using hitbox::detail::ReplyBatch;
using hitbox::detail::ReplyPipe;
using hitbox::detail::ReplyPtr;
using hitbox::detail::WakeBoard;

namespace {

/// Feeds `bytes` into `pipe`, parses whatever is complete and delivers it; returns false on a stream
/// error.
bool pump(ReplyPipe& pipe, std::string_view bytes, std::vector<std::shared_ptr<ReplyBatch>>& done) {
    if (!bytes.empty() && !pipe.feed(bytes.data(), bytes.size())) return false;
    std::vector<ReplyPtr> got;
    for (;;) {
        auto r = pipe.next();
        if (!r) return false;
        if (!*r) break;
        got.push_back(std::move(*r));
    }
    return pipe.deliver(got, done);
}

std::string describe(const redisReply& r) {
    switch (r.type) {
        case REDIS_REPLY_STATUS: return "+" + std::string(r.str, r.len);
        case REDIS_REPLY_ERROR: return "-" + std::string(r.str, r.len);
        case REDIS_REPLY_INTEGER: return ":" + std::to_string(r.integer);
        case REDIS_REPLY_NIL: return "nil";
        case REDIS_REPLY_STRING: return "$" + std::string(r.str, r.len);
        case REDIS_REPLY_ARRAY: {
            std::string out = "[";
            for (std::size_t i = 0; i < r.elements; ++i) out += (i ? "," : "") + describe(*r.element[i]);
            return out + "]";
        }
    }
    return "?";
}

std::vector<std::string> replies_of(ReplyBatch& b) {
    auto r = b.wait(std::chrono::steady_clock::now());
    REQUIRE(r);
    REQUIRE(*r);
    std::vector<std::string> out;
    for (auto& reply : **r) out.push_back(describe(*reply));
    return out;
}

// Three batches (1, 2 and 3 commands) and the six replies of every RESP2 type they get, in order.
const std::string stream =
    "+OK\r\n"
    "$5\r\nhello\r\n"
    ":42\r\n"
    "*2\r\n$1\r\na\r\n$-1\r\n"
    "-ERR wrong type\r\n"
    "$0\r\n\r\n";
const std::vector<std::vector<std::string>> expected = {
    {"+OK"}, {"$hello", ":42"}, {"[$a,nil]", "-ERR wrong type", "$"}};

}  // namespace

TEST_CASE("ReplyPipe: a stream split at every byte boundary reaches each batch in order") {
    WakeBoard board;
    for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
        INFO("cut at " << cut);
        ReplyPipe pipe("", "");
        REQUIRE(pipe.reset(1 << 20));
        std::vector<std::shared_ptr<ReplyBatch>> batches, done;
        for (std::size_t n : {1u, 2u, 3u}) {
            batches.push_back(std::make_shared<ReplyBatch>(n, board, 1u));
            pipe.push(batches.back());
        }
        REQUIRE(pump(pipe, std::string_view(stream).substr(0, cut), done));
        REQUIRE(pump(pipe, std::string_view(stream).substr(cut), done));
        ReplyPipe::complete_all(done, std::nullopt, board);
        REQUIRE(done.size() == 3);
        CHECK(pipe.empty());
        for (std::size_t i = 0; i < 3; ++i) CHECK(replies_of(*batches[i]) == expected[i]);
    }
}

TEST_CASE("ReplyPipe: byte-at-a-time feeding completes a batch only with its last reply") {
    WakeBoard board;
    ReplyPipe pipe("", "");
    REQUIRE(pipe.reset(1 << 20));
    auto all = std::make_shared<ReplyBatch>(6, board, 1u);
    pipe.push(all);
    std::vector<std::shared_ptr<ReplyBatch>> done;
    for (std::size_t i = 0; i < stream.size(); ++i) {
        REQUIRE(pump(pipe, std::string_view(stream).substr(i, 1), done));
        CHECK(done.size() == (i + 1 == stream.size() ? 1u : 0u));
    }
    ReplyPipe::complete_all(done, std::nullopt, board);
    CHECK(replies_of(*all) == std::vector<std::string>{"+OK", "$hello", ":42", "[$a,nil]", "-ERR wrong type", "$"});
}

TEST_CASE("ReplyPipe: interleaved callers each get their own replies") {
    // 200 callers of one command each, whose GET replies carry the caller's number: every caller must see
    // its own number, however the stream is cut.
    WakeBoard board;
    ReplyPipe pipe("", "");
    REQUIRE(pipe.reset(1 << 20));
    std::vector<std::shared_ptr<ReplyBatch>> batches, done;
    std::string bytes;
    for (int i = 0; i < 200; ++i) {
        batches.push_back(std::make_shared<ReplyBatch>(1, board, 1u << (i % 32)));
        pipe.push(batches.back());
        const std::string v = "caller-" + std::to_string(i);
        bytes += "$" + std::to_string(v.size()) + "\r\n" + v + "\r\n";
    }
    for (std::size_t off = 0; off < bytes.size(); off += 7)
        REQUIRE(pump(pipe, std::string_view(bytes).substr(off, 7), done));
    ReplyPipe::complete_all(done, std::nullopt, board);
    REQUIRE(done.size() == 200);
    for (int i = 0; i < 200; ++i)
        CHECK(replies_of(*batches[static_cast<std::size_t>(i)]) ==
              std::vector<std::string>{"$caller-" + std::to_string(i)});
}

TEST_CASE("ReplyPipe: the budget refuses a reply that does not fit, parsed or not") {
    WakeBoard board;
    SECTION("an array header whose pointers alone exceed it") {
        ReplyPipe pipe("", "");
        REQUIRE(pipe.reset(1 << 20));
        REQUIRE(pipe.feed("*1000000000\r\n", 13));
        auto r = pipe.next();
        REQUIRE_FALSE(r);
        CHECK(r.error().kind() == ErrorKind::capacity);
    }
    SECTION("parsed elements past the budget") {
        ReplyPipe pipe("", "");
        REQUIRE(pipe.reset(64 * 1024));
        std::string bytes = "*5000\r\n";  // 40 kB of pointers fit; 5000 integer objects do not
        for (int i = 0; i < 5000; ++i) bytes += ":1\r\n";
        REQUIRE(pipe.feed(bytes.data(), bytes.size()));
        auto r = pipe.next();
        REQUIRE_FALSE(r);
        CHECK(r.error().kind() == ErrorKind::capacity);
    }
    SECTION("unparsed bytes past the budget") {
        ReplyPipe pipe("", "");
        REQUIRE(pipe.reset(1024));
        const std::string head = "$100000\r\n" + std::string(2000, 'x');
        auto fed = pipe.feed(head.data(), head.size());
        REQUIRE_FALSE(fed);
        CHECK(fed.error().kind() == ErrorKind::capacity);
    }
    SECTION("the budget is per reply: many small replies in one feed are fine") {
        ReplyPipe pipe("", "");
        REQUIRE(pipe.reset(4096));
        std::vector<std::shared_ptr<ReplyBatch>> batches, done;
        std::string bytes;
        for (int i = 0; i < 100; ++i) {
            batches.push_back(std::make_shared<ReplyBatch>(1, board, 1u));
            pipe.push(batches.back());
            bytes += "$30\r\n" + std::string(30, 'v') + "\r\n";
        }
        REQUIRE(pump(pipe, bytes.substr(0, 3000), done));
        REQUIRE(pump(pipe, bytes.substr(3000), done));
        CHECK(done.size() == 100);
        ReplyPipe::complete_all(done, std::nullopt, board);
    }
}

TEST_CASE("ReplyPipe: a reply no batch asked for is reported; take_all empties the FIFO") {
    WakeBoard board;
    ReplyPipe pipe("", "");
    REQUIRE(pipe.reset(1 << 20));
    std::vector<std::shared_ptr<ReplyBatch>> done;
    CHECK_FALSE(pump(pipe, "+OK\r\n", done));
    auto b = std::make_shared<ReplyBatch>(2, board, 1u);
    pipe.push(b);
    CHECK_FALSE(pipe.empty());
    auto left = pipe.take_all();
    CHECK(pipe.empty());
    REQUIRE(left.size() == 1);
    ReplyPipe::complete_all(left, hitbox::Error(ErrorKind::connection, "lost"), board);
    auto r = b->wait(std::chrono::steady_clock::now());
    REQUIRE(r);
    REQUIRE_FALSE(*r);
    CHECK(r->error().kind() == ErrorKind::connection);
}

TEST_CASE("ReplyPipe: error and status texts are scrubbed of the password and the user name") {
    WakeBoard board;
    ReplyPipe pipe("pa55word-xyz", "app-user");
    REQUIRE(pipe.reset(1 << 20));
    auto b = std::make_shared<ReplyBatch>(3, board, 1u);
    pipe.push(b);
    std::vector<std::shared_ptr<ReplyBatch>> done;
    REQUIRE(pump(pipe, "-ERR bad pa55word-xyz for app-user\r\n+OK app-user\r\n*1\r\n-ERR pa55word-xyz\r\n", done));
    ReplyPipe::complete_all(done, std::nullopt, board);
    CHECK(replies_of(*b) == std::vector<std::string>{"-ERR bad *** for ***", "+OK ***", "[-ERR ***]"});
    // Bulk strings are data, not server text: left as they are.
    ReplyPipe short_user("pw", "ab");
    REQUIRE(short_user.reset(1 << 20));
    auto c = std::make_shared<ReplyBatch>(2, board, 1u);
    short_user.push(c);
    done.clear();
    REQUIRE(pump(short_user, "-ERR pw ab cd\r\n$2\r\npw\r\n", done));
    ReplyPipe::complete_all(done, std::nullopt, board);
    CHECK(replies_of(*c) == std::vector<std::string>{"-ERR ** ab cd", "$pw"});
}

TEST_CASE("ReplyPipe: a cluster redirection keeps its host, a run of a long secret's first bytes is masked") {
    WakeBoard board;
    // A user named "local" and a node named "localhost": the redirection must reach the router as sent.
    ReplyPipe pipe("LocalPw-abcdef123456", "local");
    REQUIRE(pipe.reset(1 << 20));
    auto b = std::make_shared<ReplyBatch>(5, board, 1u);
    pipe.push(b);
    std::vector<std::shared_ptr<ReplyBatch>> done;
    REQUIRE(pump(pipe,
                 "-MOVED 12182 localhost:23312\r\n-ASK 7 redis-0.local.svc:6379\r\n"
                 "-ERR unknown 'local' and 'LocalPw-abcdef123456'\r\n"
                 "-ERR args beginning with: 'LocalPw-abc' \r\n"
                 "-MOVED 1 'local':1 LocalPw-abcdef123456\r\n",
                 done));
    ReplyPipe::complete_all(done, std::nullopt, board);
    CHECK(replies_of(*b) == std::vector<std::string>{"-MOVED 12182 localhost:23312", "-ASK 7 redis-0.local.svc:6379",
                                                     "-ERR unknown '***' and '***'", "-ERR args beginning with: '***' ",
                                                     // Not a redirection a server sends: scrubbed as any text.
                                                     "-MOVED 1 '***':1 ***"});
}
