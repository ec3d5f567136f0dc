// Example runner for `meson test`: starts a redis-server on a free 127.0.0.1 port (test/support), runs the
// program given as arguments with HITBOX_REDIS_URL pointing at it, stops the server and returns the
// program's exit status. Without redis-server it exits 77 (meson: skipped), or 1 when CI=true.
//
// Usage: with_redis_server PROGRAM [ARGS...]
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

#include "support/redis_server.hpp"

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s PROGRAM [ARGS...]\n", argv[0]);
        return 2;
    }
    hitbox_test::require_redis_server();
    hitbox_test::RedisServer server;
    const std::string url = server.url();
    std::fflush(nullptr);
    const pid_t child = ::fork();
    if (child < 0) {
        std::perror("fork");
        return 1;
    }
    if (child == 0) {
        ::setenv("HITBOX_REDIS_URL", url.c_str(), 1);
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
}
