// detail::DriveSelector without sockets or threads: who drives a busy connection, decided from the rate of
// completed batches (and, for how many callers wait, their latency) fed to it with a clock of the test's own.
#include <catch2/catch.hpp>

#include <chrono>

#include <hitbox/backend/redis/detail/drive_selector.hpp>

using namespace std::chrono_literals;
using hitbox::ConnectionDrive;
using hitbox::detail::DriveSelector;
using hitbox::detail::DriveSelectorConfig;

namespace {

DriveSelectorConfig timing() {
    DriveSelectorConfig c;
    c.epoch = 10ms;
    c.warmup = 2ms;
    c.probe = 5ms;
    c.hold_min = 2;
    c.hold_max = 8;
    c.margin = 0.10;
    c.min_concurrency = 2.0;
    return c;
}

/// What one delivery a millisecond brings under a strategy: that many batches, each having waited `latency`.
struct Feed {
    std::size_t batches;
    std::chrono::nanoseconds latency;
};

/// Feeds `selector` one delivery every millisecond for `span`, as `feed_for(io_thread)` says for the strategy
/// in force. Returns the number of changes of driver, and moves `t` on by `span`.
template <class FeedFor>
int run(DriveSelector& selector, DriveSelector::Clock::time_point& t, std::chrono::milliseconds span,
        FeedFor feed_for) {
    int changes = 0;
    const auto until = t + span;
    for (; t < until; t += 1ms) {
        const Feed f = feed_for(selector.io_thread());
        if (selector.observe(t, f.batches, static_cast<long>(f.batches) * f.latency)) ++changes;
    }
    return changes;
}

}  // namespace

TEST_CASE("DriveSelector: a held strategy never changes, whatever the latencies") {
    for (auto policy : {ConnectionDrive::callers, ConnectionDrive::io_thread}) {
        DriveSelector s(policy, timing());
        const bool io = policy == ConnectionDrive::io_thread;
        CHECK(s.io_thread() == io);
        DriveSelector::Clock::time_point t{};
        // The other strategy would be ten times faster: it is never tried.
        CHECK(run(s, t, 500ms, [&](bool now_io) { return Feed{now_io == io ? 2u : 20u, 500us}; }) == 0);
        CHECK(s.io_thread() == io);
        CHECK(s.probes() == 0);
    }
}

TEST_CASE("DriveSelector: adaptive starts with the callers and probes the I/O thread under load") {
    DriveSelector s(ConnectionDrive::adaptive, timing());
    CHECK_FALSE(s.io_thread());
    DriveSelector::Clock::time_point t{};

    SECTION("the I/O thread completes more by more than the margin: it takes over and keeps the connection") {
        // 20 batches a millisecond that waited 500 us each: 10 callers waiting on average.
        run(s, t, 200ms, [](bool io) { return Feed{io ? 30u : 20u, 500us}; });
        CHECK(s.io_thread());
        CHECK(s.switches() >= 1);
        // It keeps probing the callers (they lose each time) and keeps the I/O thread.
        const auto probes = s.probes();
        run(s, t, 500ms, [](bool io) { return Feed{io ? 30u : 20u, 500us}; });
        CHECK(s.io_thread());
        CHECK(s.probes() > probes);
    }

    SECTION("the I/O thread completes less: each probe reverts, and probes come ever more rarely") {
        run(s, t, 2000ms, [](bool io) { return Feed{io ? 12u : 20u, 500us}; });
        CHECK_FALSE(s.io_thread());
        CHECK(s.switches() == 0);
        // Holds of 2, 4, 8, 8, ... epochs of 10 ms between probes of 7 ms: about 20 probes in 2 s, against
        // ~117 if the hold never grew.
        CHECK(s.probes() >= 10);
        CHECK(s.probes() <= 30);
    }

    SECTION("no better than the margin: the callers keep the connection") {
        run(s, t, 500ms, [](bool io) { return Feed{io ? 21u : 20u, 500us}; });
        CHECK_FALSE(s.io_thread());
        CHECK(s.switches() == 0);
        CHECK(s.probes() >= 1);
    }
}

TEST_CASE("DriveSelector: one or two callers at a time lead themselves; no probe") {
    DriveSelector s(ConnectionDrive::adaptive, timing());
    DriveSelector::Clock::time_point t{};
    // One batch a millisecond waiting 500 us: half a caller waiting on average.
    CHECK(run(s, t, 1000ms, [](bool) { return Feed{1u, 500us}; }) == 0);
    CHECK_FALSE(s.io_thread());
    CHECK(s.probes() == 0);
}

TEST_CASE("DriveSelector: after load falls away the callers take the connection back") {
    DriveSelector s(ConnectionDrive::adaptive, timing());
    DriveSelector::Clock::time_point t{};
    run(s, t, 200ms, [](bool io) { return Feed{io ? 30u : 20u, 500us}; });
    REQUIRE(s.io_thread());
    // A lone caller now: the first epoch that ends shows it, whichever phase was running.
    run(s, t, 100ms, [](bool) { return Feed{1u, 500us}; });
    CHECK_FALSE(s.io_thread());
    // An idle second, then one delivery: the elapsed epoch averages to nobody waiting.
    s.observe(t + 1000ms, 20, 20 * 500us);
    CHECK_FALSE(s.io_thread());
}

TEST_CASE("DriveSelector: latencies of zero, negative (clock reads from two threads) or huge are safe") {
    DriveSelector s(ConnectionDrive::adaptive, timing());
    DriveSelector::Clock::time_point t{};
    // Below zero or zero: nobody waits on average, so no probe.
    run(s, t, 100ms, [](bool io) { return Feed{io ? 30u : 20u, -5us}; });
    CHECK_FALSE(s.io_thread());
    run(s, t, 100ms, [](bool io) { return Feed{io ? 30u : 20u, 0us}; });
    CHECK_FALSE(s.io_thread());
    CHECK(s.probes() == 0);
    run(s, t, 300ms, [](bool io) { return Feed{io ? 30u : 20u, 1h}; });  // no overflow of the summed latency
    CHECK(s.io_thread());
}
