// Example runner for `meson test`: starts a Redis Cluster of 3 masters and 3 replicas on free 127.0.0.1
// ports (test/support/redis_cluster.hpp), runs the program given as arguments with
// HITBOX_REDIS_CLUSTER_URLS set to the nodes' URLs (comma-separated), tears the cluster down and returns
// the program's exit status. Without redis-server it exits 77 (meson: skipped), or 1 when CI=true.
//
// Usage: with_redis_cluster PROGRAM [ARGS...]
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include <sys/wait.h>
#include <unistd.h>

#include "support/redis_cluster.hpp"

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s PROGRAM [ARGS...]\n", argv[0]);
        return 2;
    }
    hitbox_test::require_redis_server();
    try {
        hitbox_test::RedisCluster cluster;
        std::string urls;
        for (const auto& u : cluster.urls()) urls += (urls.empty() ? "" : ",") + u;
        std::fflush(nullptr);
        const pid_t child = ::fork();
        if (child < 0) {
            std::perror("fork");
            return 1;
        }
        if (child == 0) {
            ::setenv("HITBOX_REDIS_CLUSTER_URLS", urls.c_str(), 1);
            ::execv(argv[1], argv + 1);
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
        std::fprintf(stderr, "%s ended by signal %d\n", argv[1], WTERMSIG(status));
        return 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "cannot start the cluster: %s\n", e.what());
        return 1;
    }
}
