#pragma once
/// \file
/// The definitions of hitbox::OffloadManager (offload/offload_manager.hpp): included by that header in a
/// header-only build, compiled once into the hitbox library with HITBOX_COMPILED_LIB=1
/// (hitbox/core/linkage.hpp).

#include <algorithm>
#include <iostream>

#include <hitbox/offload/offload_manager.hpp>

namespace hitbox {

namespace detail {

/// Why a configuration is invalid, or nullopt when it is fine.
HITBOX_LIB_INLINE std::optional<std::string> offload_config_problem(const OffloadConfig& c) {
    if (c.workers == 0 || c.workers > 1024)
        return "OffloadManager: workers must be 1..1024, got " + std::to_string(c.workers);
    if (c.max_queue == 0) return std::string("OffloadManager: max_queue must be at least 1");
    if (c.timeout.mode() != TimeoutPolicy::Mode::none && c.timeout.after() <= std::chrono::milliseconds(0))
        return std::string("OffloadManager: a task timeout must be positive");
    if (c.drain_timeout < std::chrono::milliseconds(0))
        return std::string("OffloadManager: drain_timeout must not be negative");
    return std::nullopt;
}

/// A dedup key made printable: control and non-ASCII bytes as \xNN, cut after 64 bytes.
HITBOX_LIB_INLINE std::string printable_key(std::string_view key) {
    static constexpr char hex[] = "0123456789abcdef";
    std::string out;
    for (std::size_t i = 0; i < key.size() && i < 64; ++i) {
        auto c = static_cast<unsigned char>(key[i]);
        if (c >= 0x20 && c < 0x7f && c != '\\') {
            out.push_back(static_cast<char>(c));
        } else {
            out.append("\\x").push_back(hex[c >> 4]);
            out.push_back(hex[c & 0xf]);
        }
    }
    if (key.size() > 64) out.append("...");
    return out;
}

HITBOX_LIB_INLINE void log_offload_timeout(const OffloadTimeout& t) {
    std::clog << "hitbox offload: " << to_string(t.kind) << " task '" << printable_key(t.key) << "' ran past "
              << t.policy.after().count() << " ms (" << to_string(t.policy.mode()) << ")\n";
}

}  // namespace detail

HITBOX_LIB_INLINE OffloadManager::OffloadManager(OffloadConfig config) : config_(std::move(config)) {
    if (auto problem = detail::offload_config_problem(config_)) throw std::invalid_argument(*problem);
    on_timeout_ = config_.on_timeout;
    workers_.reserve(config_.workers);
    try {
        for (std::size_t i = 0; i < config_.workers; ++i) workers_.emplace_back([this] { work_(); });
        supervisor_ = std::thread([this] { supervise_(); });
    } catch (...) {
        shutdown(std::chrono::milliseconds(0));  // join the threads that did start
        throw;
    }
}

HITBOX_LIB_INLINE OffloadManager::~OffloadManager() { shutdown(config_.drain_timeout); }

HITBOX_LIB_INLINE Result<std::unique_ptr<OffloadManager>> OffloadManager::create(OffloadConfig config) {
    if (auto problem = detail::offload_config_problem(config)) return fail(ErrorKind::config, *problem);
    return std::make_unique<OffloadManager>(std::move(config));
}

HITBOX_LIB_INLINE bool OffloadManager::spawn(OffloadKind kind, std::string dedup_key, std::function<void()> task,
                                             std::optional<TimeoutPolicy> timeout) {
    if (!task) return refuse_empty_();
    return enqueue_(
        kind, std::move(dedup_key), [f = std::move(task)](std::stop_token) { f(); }, timeout.value_or(config_.timeout));
}

HITBOX_LIB_INLINE bool OffloadManager::spawn(OffloadKind kind, std::string dedup_key,
                                             std::function<void(std::stop_token)> task,
                                             std::optional<TimeoutPolicy> timeout) {
    if (!task) return refuse_empty_();
    return enqueue_(kind, std::move(dedup_key), std::move(task), timeout.value_or(config_.timeout));
}

HITBOX_LIB_INLINE bool OffloadManager::wait_all(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    return detail::wait_until_deadline(idle_cv_, lock, detail::deadline_after(timeout),
                                       [&] { return counters_.active == 0; });
}

HITBOX_LIB_INLINE bool OffloadManager::shutdown(std::chrono::milliseconds drain_timeout) {
    std::lock_guard once(shutdown_mutex_);
    std::unique_lock lock(mutex_);
    if (exit_) return counters_.active == 0;
    stopping_ = true;
    bool drained = detail::wait_until_deadline(idle_cv_, lock, detail::deadline_after(drain_timeout),
                                               [&] { return counters_.active == 0; });
    std::deque<std::unique_ptr<Task>> dropped;
    if (!drained) {
        dropped.swap(queue_);
        for (auto& t : dropped) {
            finish_(*t);
            ++counters_.discarded;
        }
        counters_.queued = 0;
        for (Task* t : running_) t->stop.request_stop();
    }
    exit_ = true;
    work_cv_.notify_all();
    supervisor_cv_.notify_all();
    lock.unlock();
    dropped.clear();
    for (auto& w : workers_)
        if (w.joinable()) w.join();
    if (supervisor_.joinable()) supervisor_.join();
    return drained;
}

HITBOX_LIB_INLINE OffloadCounters OffloadManager::counters() const {
    std::lock_guard lock(mutex_);
    return counters_;
}

HITBOX_LIB_INLINE OffloadDurations OffloadManager::task_durations() const noexcept {
    OffloadDurations d;
    for (std::size_t k = 0; k < offload_kind_count; ++k) d.by_kind[k] = durations_[k].snapshot();
    return d;
}

HITBOX_LIB_INLINE void OffloadManager::set_timeout_callback(std::function<void(const OffloadTimeout&)> callback) {
    std::lock_guard lock(mutex_);
    on_timeout_ = std::move(callback);
}

HITBOX_LIB_INLINE bool OffloadManager::refuse_empty_() {
    std::lock_guard lock(mutex_);
    ++counters_.rejected;
    return false;
}

HITBOX_LIB_INLINE bool OffloadManager::enqueue_(OffloadKind kind, std::string key,
                                                std::function<void(std::stop_token)> fn, TimeoutPolicy timeout) {
    std::lock_guard lock(mutex_);
    if (stopping_) {
        ++counters_.rejected;
        return false;
    }
    if (!key.empty() && pending_.count({kind, key}) != 0) {
        ++counters_.deduplicated;
        return false;
    }
    if (queue_.size() >= config_.max_queue) {
        ++counters_.rejected;
        return false;
    }
    if (!key.empty()) pending_.emplace(kind, key);
    queue_.push_back(std::make_unique<Task>(Task{kind, std::move(key), std::move(fn), timeout}));
    ++counters_.spawned;
    ++counters_.active;
    ++counters_.queued;
    work_cv_.notify_one();
    return true;
}

HITBOX_LIB_INLINE void OffloadManager::finish_(Task& t) {
    if (!t.key.empty()) pending_.erase({t.kind, t.key});
    --counters_.active;
    if (counters_.active == 0) idle_cv_.notify_all();
}

HITBOX_LIB_INLINE void OffloadManager::work_() {
    std::unique_lock lock(mutex_);
    for (;;) {
        work_cv_.wait(lock, [&] { return exit_ || !queue_.empty(); });
        if (queue_.empty()) return;
        std::unique_ptr<Task> task = std::move(queue_.front());
        queue_.pop_front();
        --counters_.queued;
        ++counters_.running;
        running_.push_back(task.get());
        if (task->timeout.mode() != TimeoutPolicy::Mode::none) {
            task->deadline = detail::deadline_after(task->timeout.after());
            supervisor_cv_.notify_one();
        }
        lock.unlock();
        bool threw = false;
        const auto start = std::chrono::steady_clock::now();
        try {
            task->fn(task->stop.get_token());
        } catch (...) {
            threw = true;
        }
        durations_[static_cast<std::size_t>(task->kind)].record(std::chrono::steady_clock::now() - start);
        task->fn = nullptr;  // release captures before taking the lock
        lock.lock();
        running_.erase(std::find(running_.begin(), running_.end(), task.get()));
        --counters_.running;
        ++counters_.completed;
        if (threw) ++counters_.failed;
        if (!task->abandoned) finish_(*task);
    }
}

HITBOX_LIB_INLINE void OffloadManager::supervise_() {
    std::unique_lock lock(mutex_);
    while (!exit_) {
        std::optional<std::chrono::steady_clock::time_point> next;
        for (const Task* t : running_)
            if (t->timeout.mode() != TimeoutPolicy::Mode::none && !t->timed_out && (!next || t->deadline < *next))
                next = t->deadline;
        if (next && *next != std::chrono::steady_clock::time_point::max())
            supervisor_cv_.wait_until(lock, *next);
        else
            supervisor_cv_.wait(lock);
        if (exit_) break;
        const auto now = std::chrono::steady_clock::now();
        std::vector<OffloadTimeout> events;
        for (Task* t : running_) {
            if (t->timeout.mode() == TimeoutPolicy::Mode::none || t->timed_out || t->deadline > now ||
                t->deadline == std::chrono::steady_clock::time_point::max())
                continue;
            t->timed_out = true;
            ++counters_.timed_out;
            if (t->timeout.mode() == TimeoutPolicy::Mode::cancel_wait) {
                t->abandoned = true;
                t->stop.request_stop();
                finish_(*t);
            }
            events.push_back(OffloadTimeout{t->kind, t->key, t->timeout});
        }
        if (events.empty()) continue;
        // The user's callback may throw (or its copy may): this thread has no caller to hand an exception
        // to, so a throwing callback is treated as absent for that event and the default log line is written.
        std::function<void(const OffloadTimeout&)> callback;
        try {
            callback = on_timeout_;
        } catch (...) {
        }
        lock.unlock();
        for (const auto& e : events) {
            bool reported = false;
            if (callback) {
                try {
                    callback(e);
                    reported = true;
                } catch (...) {
                }
            }
            if (!reported) {
                try {
                    detail::log_offload_timeout(e);
                } catch (...) {
                }
            }
        }
        lock.lock();
    }
}

}  // namespace hitbox
