// RedisBackend's builder without a server: URL forms, credential precedence, builder validation, the types
// the builder produces, the command framing (RESP) and AnyConnection's mode by name. Nothing here may touch
// the network. (The run-time configuration factory is test_config_factory*.cpp.)
#include <catch2/catch.hpp>

#include <chrono>
#include <iterator>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include <hitbox/backend/redis.hpp>
#include <hitbox/backend/redis/detail/url.hpp>
#include <hitbox/compress/zstd.hpp>
#include <hitbox/format/json.hpp>
#include <hitbox/key_format/url_encoded.hpp>

using namespace std::chrono_literals;
using hitbox::detail::parse_redis_url;
using hitbox::detail::RedisEndpoint;

TEST_CASE("redis:// URLs: host, port, database, credentials") {
    auto ep = parse_redis_url("redis://localhost:6379/");
    REQUIRE(ep);
    CHECK(ep->transport == RedisEndpoint::Transport::tcp);
    CHECK(ep->host == "localhost");
    CHECK(ep->port == 6379);
    CHECK(ep->db == 0);
    CHECK_FALSE(ep->username);
    CHECK_FALSE(ep->password);

    ep = parse_redis_url("redis://cache.example.com");
    REQUIRE(ep);
    CHECK(ep->host == "cache.example.com");
    CHECK(ep->port == 6379);

    ep = parse_redis_url("redis://app:s3cret@10.0.0.7:7000/5");
    REQUIRE(ep);
    CHECK(ep->host == "10.0.0.7");
    CHECK(ep->port == 7000);
    CHECK(ep->db == 5);
    CHECK(ep->username == "app");
    CHECK(ep->password == "s3cret");

    ep = parse_redis_url("redis://:onlypass@h:1/");
    REQUIRE(ep);
    CHECK_FALSE(ep->username);
    CHECK(ep->password == "onlypass");

    // Percent-escaped credentials; an unescaped '@' in the password still splits at the last '@'.
    ep = parse_redis_url("redis://us%3Aer:p%40ss%2Fw@h/");
    REQUIRE(ep);
    CHECK(ep->username == "us:er");
    CHECK(ep->password == "p@ss/w");
    ep = parse_redis_url("redis://u:p@ss@h/");
    REQUIRE(ep);
    CHECK(ep->password == "p@ss");
    CHECK(ep->host == "h");
}

TEST_CASE("redis:// URLs: IPv6 hosts and unix sockets") {
    auto ep = parse_redis_url("redis://[::1]:6380/2");
    REQUIRE(ep);
    CHECK(ep->host == "::1");
    CHECK(ep->port == 6380);
    CHECK(ep->db == 2);
    CHECK(ep->address() == "[::1]:6380");

    ep = parse_redis_url("redis://[2001:db8::7]");
    REQUIRE(ep);
    CHECK(ep->host == "2001:db8::7");
    CHECK(ep->port == 6379);

    ep = parse_redis_url("unix:///var/run/redis/redis.sock");
    REQUIRE(ep);
    CHECK(ep->transport == RedisEndpoint::Transport::unix_socket);
    CHECK(ep->path == "/var/run/redis/redis.sock");
    CHECK(ep->address() == "unix:/var/run/redis/redis.sock");

    ep = parse_redis_url("redis+unix://app:pw@/tmp/r.sock?db=3");
    REQUIRE(ep);
    CHECK(ep->path == "/tmp/r.sock");
    CHECK(ep->db == 3);
    CHECK(ep->username == "app");
    CHECK(ep->password == "pw");
}

TEST_CASE("Bad URLs are config errors that never show the password") {
    const char* bad[] = {
        "localhost:6379",             // no scheme
        "http://host/",               // wrong scheme
        "redis://",                   // no host
        "redis://host:0/",            // port out of range
        "redis://host:65536/",        // port out of range
        "redis://host:abc/",          // port not a number
        "redis://host:/",             // empty port
        "redis://host/db1",           // database not a number
        "redis://host/1?timeout=3",   // query parameters
        "redis://[::1/",              // unterminated IPv6
        "redis://[::1]x/",            // junk after IPv6
        "unix://relative/path.sock",  // unix path must be absolute
        "unix:///tmp/r.sock?dbx=1",   // unknown parameter
        "redis://u:%zz@host/",        // bad escape
    };
    for (const char* url : bad) {
        INFO(url);
        auto ep = parse_redis_url(url);
        REQUIRE_FALSE(ep);
        CHECK(ep.error().kind() == hitbox::ErrorKind::config);
    }
    auto ep = parse_redis_url("redis://app:hunter2-very-secret@host:notaport/");
    REQUIRE_FALSE(ep);
    CHECK(ep.error().message().find("hunter2") == std::string::npos);
    CHECK(ep.error().message().find("app") == std::string::npos);  // the whole userinfo is redacted
    CHECK(ep.error().message().find("redis://***@host") != std::string::npos);
}

TEST_CASE("URL authority ends at the first '/': an '@' in the path never names the host") {
    auto ep = parse_redis_url("redis://cache.internal:6379/0@evil.example");
    REQUIRE_FALSE(ep);  // "0@evil.example" is not a database number
    CHECK(ep.error().kind() == hitbox::ErrorKind::config);
    for (const char* url : {"redis://cache.internal/x@evil.example:6379", "redis://cache.internal?a@evil.example"}) {
        INFO(url);
        CHECK_FALSE(parse_redis_url(url));
    }
    // An '@' before the first '/' still separates the credentials, and a password may contain '@'.
    auto ok = parse_redis_url("redis://u:p@ss@cache.internal:6380/2");
    REQUIRE(ok);
    CHECK(ok->host == "cache.internal");
    CHECK(ok->port == 6380);
    CHECK(ok->password == "p@ss");
    // A message hides everything up to the last '@' anywhere: it may end a password that holds an
    // unescaped '/' or '?' (which is why the URL did not parse).
    CHECK(hitbox::detail::redact_url("redis://cache.internal:6379/0@evil.example") == "redis://***@evil.example");
}

TEST_CASE("No message shows a password that holds an unescaped '/' or '?', or a query parameter") {
    const std::string secret = "Sekr1tZZ";
    for (const std::string url : {"redis://:Sek/r1tZZ@127.0.0.1:6379/", "redis://usr:Sekr1t/ZZ@h/",
                                  "redis://:Sek?r1tZZ@127.0.0.1:6379/", "redis://127.0.0.1:6379/?password=Sekr1tZZ",
                                  "unix:///tmp/x.sock?password=Sekr1tZZ", "rediss://u:Sek#r1tZZ/@host:6380/"}) {
        INFO(url);
        auto ep = parse_redis_url(url);
        REQUIRE_FALSE(ep);
        CHECK(ep.error().kind() == hitbox::ErrorKind::config);
        const std::string text = ep.error().message();
        for (const std::string piece : {"Sek", "r1t", "ZZ", "usr"}) CHECK(text.find(piece) == std::string::npos);
        // The builder and the run-time configuration report the same text.
        auto built = hitbox::RedisBackend<>::builder().connection(hitbox::ConnectionMode::single(url)).build();
        REQUIRE_FALSE(built);
        CHECK(std::string(built.error().what()).find("r1t") == std::string::npos);
    }
    // The hint says what to do about it.
    auto ep = parse_redis_url("redis://:Sek/r1tZZ@127.0.0.1:6379/");
    REQUIRE_FALSE(ep);
    CHECK(ep.error().message().find("percent-encoded") != std::string::npos);
    CHECK(hitbox::detail::redact_url("redis://h:6379/?db=2") == "redis://h:6379/?***");
    // Escaped, such a password parses.
    auto ok = parse_redis_url("redis://:Sek%2Fr1t%3FZZ@127.0.0.1:6379/");
    REQUIRE(ok);
    CHECK(ok->password == "Sek/r1t?ZZ");
}

TEST_CASE("A userinfo without ':' is a password alone, and no message shows it") {
    auto ep = parse_redis_url("redis://s3cr3t-token@cache.internal:6379/");
    REQUIRE(ep);
    CHECK(ep->password == "s3cr3t-token");
    CHECK_FALSE(ep->username);
    auto bad = parse_redis_url("redis://s3cr3t-token@cache.internal:notaport/");
    REQUIRE_FALSE(bad);
    CHECK(bad.error().message().find("s3cr3t") == std::string::npos);
    // A user name without a password is refused without naming it.
    auto b = hitbox::RedisBackend<>::builder()
                 .connection(hitbox::ConnectionMode::single("redis://127.0.0.1:6379/"))
                 .username("alice-the-admin")
                 .build();
    REQUIRE_FALSE(b);
    CHECK(b.error().kind() == hitbox::ErrorKind::config);
    CHECK(b.error().what().find("alice") == std::string::npos);
}

TEST_CASE("rediss:// is TLS, or a config error saying how to enable it") {
    auto ep = parse_redis_url("rediss://user:topsecret@host:6380/");
    auto b = hitbox::RedisBackend<>::builder().connection(hitbox::ConnectionMode::single("rediss://h:6380/")).build();
    auto with_option = hitbox::RedisBackend<>::builder()
                           .connection(hitbox::ConnectionMode::single("redis://h:6380/"))
                           .tls(hitbox::TlsOptions{})
                           .build();
    if constexpr (hitbox::tls_available()) {
        REQUIRE(ep);
        CHECK(ep->tls);
        CHECK(ep->host == "host");
        CHECK(ep->port == 6380);
        CHECK(b);  // lazy: nothing is opened yet
        CHECK(with_option);
        CHECK_FALSE(parse_redis_url("redis://host:6380/")->tls);
    } else {
        REQUIRE_FALSE(ep);
        CHECK(ep.error().kind() == hitbox::ErrorKind::config);
        CHECK(ep.error().message().find("TLS is not available in this build") != std::string::npos);
        CHECK(ep.error().message().find("-Dtls=enabled") != std::string::npos);
        CHECK(ep.error().message().find("topsecret") == std::string::npos);
        REQUIRE_FALSE(b);
        CHECK(b.error().kind() == hitbox::ErrorKind::config);
        CHECK(b.error().backend() == "redis");
        REQUIRE_FALSE(with_option);
        CHECK(with_option.error().kind() == hitbox::ErrorKind::config);
        CHECK(with_option.error().message().find("TLS") != std::string::npos);
    }
}

static_assert(hitbox::Backend<hitbox::RedisBackend<>>);
static_assert(hitbox::Backend<hitbox::RedisBackend<hitbox::UrlEncoded, hitbox::JsonFormat, hitbox::ZstdCompressor>>);
static_assert(hitbox::Connection<hitbox::SingleNode>);

TEST_CASE("Builder: connection is required, the failure says what to call") {
    auto b = hitbox::RedisBackend<>::builder().build();
    REQUIRE_FALSE(b);
    CHECK(b.error().kind() == hitbox::ErrorKind::config);
    CHECK(b.error().message().find(".connection(hitbox::ConnectionMode::single(") != std::string::npos);
}

TEST_CASE("Builder: defaults, policy types and validation") {
    auto b =
        hitbox::RedisBackend<>::builder().connection(hitbox::ConnectionMode::single("redis://127.0.0.1:1/")).build();
    REQUIRE(b);
    STATIC_REQUIRE(std::is_same_v<std::remove_cvref_t<decltype(*b)>,
                                  hitbox::RedisBackend<hitbox::Bitcode, hitbox::BinaryFormat,
                                                       hitbox::PassthroughCompressor, hitbox::SingleNode>>);
    CHECK(b->label() == "redis");
    CHECK(b->connection().settings().connect_timeout == hitbox::default_connect_timeout);
    CHECK(b->connection().settings().command_timeout == hitbox::default_command_timeout);
    CHECK(b->connection().counters().connect_attempts == 0);  // build never touches the network

    auto custom = hitbox::RedisBackend<>::builder()
                      .value_format<hitbox::JsonFormat>()
                      .connection(hitbox::ConnectionMode::single("redis://127.0.0.1:1/"))
                      .key_format<hitbox::UrlEncoded>()
                      .compressor(hitbox::ZstdCompressor{5})
                      .label("sessions")
                      .key_prefix("app:")
                      .connect_timeout(250ms)
                      .command_timeout(std::chrono::microseconds(1500))
                      .build();
    REQUIRE(custom);
    STATIC_REQUIRE(
        std::is_same_v<
            std::remove_cvref_t<decltype(*custom)>,
            hitbox::RedisBackend<hitbox::UrlEncoded, hitbox::JsonFormat, hitbox::ZstdCompressor, hitbox::SingleNode>>);
    CHECK(custom->label() == "sessions");
    CHECK(custom->codec().key(hitbox::CacheKey{"u", 1, {{"id", "7"}}}) == "app:u:v1:id=7");
    CHECK(custom->connection().settings().connect_timeout == 250ms);
    CHECK(custom->connection().settings().command_timeout == 2ms);  // rounded up to whole ms

    auto single = hitbox::ConnectionMode::single("redis://127.0.0.1:1/");
    auto check_config_error = [](auto result, std::string_view what) {
        INFO(what);
        REQUIRE_FALSE(result);
        CHECK(result.error().kind() == hitbox::ErrorKind::config);
    };
    check_config_error(hitbox::RedisBackend<>::builder().connection(single).connect_timeout(0ms).build(),
                       "zero connect");
    check_config_error(hitbox::RedisBackend<>::builder().connection(single).command_timeout(-1ms).build(),
                       "negative cmd");
    check_config_error(hitbox::RedisBackend<>::builder().connection(single).label("").build(), "empty label");
    check_config_error(hitbox::RedisBackend<>::builder().connection(single).reconnect_backoff(2s, 1s).build(),
                       "backoff");
    check_config_error(hitbox::RedisBackend<>::builder().connection(single).username("app").build(), "user, no pass");
    check_config_error(hitbox::RedisBackend<>::builder().connection(single).max_reply_bytes(0).build(), "reply 0");
    hitbox::ConnectionTuning bad_tuning;
    bad_tuning.max_write_rounds = 0;
    check_config_error(hitbox::RedisBackend<>::builder().connection(single).tuning(bad_tuning).build(), "tuning");
}

TEST_CASE("Builder credentials override the URL's, each on its own; errors never show them") {
    auto url_only = hitbox::RedisBackend<>::builder()
                        .connection(hitbox::ConnectionMode::single("redis://urluser:urlpass@127.0.0.1:1/"))
                        .build();
    REQUIRE(url_only);
    CHECK(url_only->connection().settings().endpoint.username == "urluser");
    CHECK(url_only->connection().settings().endpoint.password == "urlpass");

    auto pass_override = hitbox::RedisBackend<>::builder()
                             .connection(hitbox::ConnectionMode::single("redis://urluser:urlpass@127.0.0.1:1/"))
                             .password("builderpass")
                             .build();
    REQUIRE(pass_override);
    CHECK(pass_override->connection().settings().endpoint.username == "urluser");
    CHECK(pass_override->connection().settings().endpoint.password == "builderpass");

    auto both = hitbox::RedisBackend<>::builder()
                    .username("builderuser")
                    .password("builderpass")
                    .connection(hitbox::ConnectionMode::single("redis://:urlpass@127.0.0.1:1/"))
                    .build();
    REQUIRE(both);
    CHECK(both->connection().settings().endpoint.username == "builderuser");
    CHECK(both->connection().settings().endpoint.password == "builderpass");

    auto bad = hitbox::RedisBackend<>::builder()
                   .password("builder-secret-xyz")
                   .connection(hitbox::ConnectionMode::single("redis://u:url-secret-xyz@127.0.0.1:99999/"))
                   .build();
    REQUIRE_FALSE(bad);
    CHECK(bad.error().what().find("secret-xyz") == std::string::npos);
}

TEST_CASE("Commands are framed as RESP arrays of bulk strings: binary-safe arguments (doc/wire-format.md)") {
    std::string out;
    REQUIRE(hitbox::detail::append_command(out, {"SET", std::string_view("k\0y", 3), "v\r\n", "PX", "1500"}));
    CHECK(out == std::string("*5\r\n$3\r\nSET\r\n$3\r\nk\0y\r\n$3\r\nv\r\n\r\n$2\r\nPX\r\n$4\r\n1500\r\n", 49));
    hitbox::ConnectionWrite del{"key", {}, std::nullopt, true};
    out.clear();
    REQUIRE(hitbox::detail::append_write(out, del));
    CHECK(out == "*2\r\n$3\r\nDEL\r\n$3\r\nkey\r\n");
    hitbox::ConnectionWrite forever{"key", "val", std::nullopt, false};
    out.clear();
    REQUIRE(hitbox::detail::append_write(out, forever));
    CHECK(out == "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$3\r\nval\r\n");
}

TEST_CASE("append_command writes the same bytes as hiredis's redisFormatCommandArgv") {
    // The framing is hitbox's own (hiredis's formatter allocates and calls sprintf per command, a tenth of
    // the client's time under 32 threads); hiredis's is the reference it must match byte for byte.
    std::mt19937_64 rng(0x5eedf00du);
    auto hiredis_format = [](const std::vector<std::string>& args) {
        std::vector<const char*> argv;
        std::vector<std::size_t> lens;
        for (const auto& a : args) {
            argv.push_back(a.data());
            lens.push_back(a.size());
        }
        char* formatted = nullptr;
        const int len = redisFormatCommandArgv(&formatted, static_cast<int>(args.size()), argv.data(), lens.data());
        REQUIRE(len >= 0);
        std::string out(formatted, static_cast<std::size_t>(len));
        redisFreeCommand(formatted);
        return out;
    };
    const std::size_t sizes[] = {0, 1, 9, 10, 99, 100, 1000, 70000};
    for (int round = 0; round < 500; ++round) {
        std::vector<std::string> args(1 + rng() % 5);
        for (auto& a : args) {
            a.resize(sizes[rng() % std::size(sizes)] + rng() % 3);
            for (auto& c : a) c = static_cast<char>(rng());  // any byte, NUL, CR and LF included
        }
        std::string ours = "prefix";  // appends: what is there stays
        bool ok = false;
        switch (args.size()) {
            case 1: ok = hitbox::detail::append_command(ours, {args[0]}); break;
            case 2: ok = hitbox::detail::append_command(ours, {args[0], args[1]}); break;
            case 3: ok = hitbox::detail::append_command(ours, {args[0], args[1], args[2]}); break;
            case 4: ok = hitbox::detail::append_command(ours, {args[0], args[1], args[2], args[3]}); break;
            default: ok = hitbox::detail::append_command(ours, {args[0], args[1], args[2], args[3], args[4]});
        }
        REQUIRE(ok);
        REQUIRE(ours.substr(0, 6) == "prefix");
        REQUIRE(ours.substr(6) == hiredis_format(args));
    }
}

TEST_CASE("AnyConnection: the mode by name, validated by build() without touching the network") {
    for (const char* name : {"single", "cluster"}) {
        auto mode = hitbox::ConnectionMode::parse(name, {"redis://127.0.0.1:1"});
        REQUIRE(mode);
        auto b = hitbox::RedisBackend<>::builder().connection(std::move(*mode)).build();  // port 1: nothing listens
        REQUIRE(b);
        CHECK(b->connection().active_mode() == name);
        CHECK(b->connection().counters().connect_attempts == 0);
    }
    auto unknown = hitbox::ConnectionMode::parse("Cluster", {"redis://127.0.0.1:1"});
    REQUIRE_FALSE(unknown);
    CHECK(unknown.error().message() == "unknown Redis mode \"Cluster\"; valid: single, cluster");
    auto two = hitbox::ConnectionMode::parse("single", {"redis://a:1", "redis://b:2"});
    REQUIRE_FALSE(two);
    CHECK(two.error().kind() == hitbox::ErrorKind::config);
    // The held policy's own checks apply: a cluster has only database 0.
    auto db = hitbox::RedisBackend<>::builder()
                  .connection(*hitbox::ConnectionMode::parse("cluster", {"redis://u:pw@127.0.0.1:7000/3"}))
                  .build();
    REQUIRE_FALSE(db);
    CHECK(db.error().message().find("database 0") != std::string::npos);
    CHECK(db.error().message().find("pw") == std::string::npos);
}
