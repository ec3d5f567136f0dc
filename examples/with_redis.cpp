// Example runner for `meson test`: starts Redis on free 127.0.0.1 ports (test/support), runs the program
// given as arguments with Redis's address in its environment, stops Redis and returns the program's exit
// status. Without redis-server it exits 77 (meson: skipped), or 1 when CI=true.
//
// Usage: with_redis PROGRAM [ARGS...]            one redis-server; HITBOX_REDIS_URL=redis://127.0.0.1:PORT/
//        with_redis --cluster PROGRAM [ARGS...]  3 masters + 3 replicas; HITBOX_REDIS_CLUSTER_URLS=url,url,...
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <string_view>

#include <sys/wait.h>
#include <unistd.h>

#include "support/redis_cluster.hpp"

namespace {

/// Runs argv[0] with `var`=`value` added to its environment; its exit status (1 when a signal ended it).
int run_with(const char* var, const std::string& value, char** argv) {
    std::fflush(nullptr);
    const pid_t child = ::fork();
    if (child < 0) {
        std::perror("fork");
        return 1;
    }
    if (child == 0) {
        ::setenv(var, value.c_str(), 1);
        ::execv(argv[0], argv);
        std::perror("execv");
        ::_exit(127);
    }
    int status = 0;
    while (::waitpid(child, &status, 0) < 0) {
        if (errno != EINTR) {
            std::perror("waitpid");
            return 1;
        }
    }
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    std::fprintf(stderr, "%s ended by signal %d\n", argv[0], WTERMSIG(status));
    return 1;
}

}  // namespace

int main(int argc, char** argv) {
    const bool cluster = argc > 1 && std::string_view(argv[1]) == "--cluster";
    const int first = cluster ? 2 : 1;
    if (argc <= first) {
        std::fprintf(stderr, "usage: %s [--cluster] PROGRAM [ARGS...]\n", argv[0]);
        return 2;
    }
    hitbox_test::require_redis_server();
    try {
        if (cluster) {
            hitbox_test::RedisCluster redis;
            std::string urls;
            for (const auto& u : redis.urls()) urls += (urls.empty() ? "" : ",") + u;
            return run_with("HITBOX_REDIS_CLUSTER_URLS", urls, argv + first);
        }
        hitbox_test::RedisServer redis;
        return run_with("HITBOX_REDIS_URL", redis.url(), argv + first);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "cannot start Redis: %s\n", e.what());
        return 1;
    }
}
