#pragma once
/// \file
/// detail::write_tier_metrics: the Prometheus series of every tier of a tier tree (each leaf's stats() and
/// durations(), each composition level's counters summed by label path), through one walk (visit_tiers).
/// The cache front's exporter (cache/prometheus.hpp) and AnyBackend (for the tiers it hides) both use it.

#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#include <hitbox/compose/visit.hpp>
#include <hitbox/core/concepts.hpp>
#include <hitbox/core/prometheus.hpp>
#include <hitbox/core/stats.hpp>

namespace hitbox::detail {

/// Stats snapshots of the levels of tiered backends, by label path: a level at a path already held, with
/// stats of the same CounterStruct type, is added to it (the unlabelled inner levels of a fold share their
/// parent's path); written in the order the paths were first seen.
class LevelStats {
public:
    template <class S>
    void add(std::string_view path, const S& stats) {
        if constexpr (CounterStruct<S>) {
            for (auto& level : levels_)
                if (level.path == path && *level.type == typeid(S)) {
                    add_counters(*static_cast<S*>(level.stats.get()), stats);
                    return;
                }
        }
        levels_.push_back(Level{std::string(path), &typeid(S), std::make_shared<S>(stats),
                                [](PrometheusWriter& out, std::string_view p, const void* s) {
                                    write_backend_stats(out, p, *static_cast<const S*>(s));
                                }});
    }

    void write(PrometheusWriter& out) const {
        for (const auto& level : levels_) level.write(out, level.path, level.stats.get());
    }

private:
    struct Level {
        std::string path;
        const std::type_info* type;
        std::shared_ptr<void> stats;
        void (*write)(PrometheusWriter&, std::string_view, const void*);
    };
    std::vector<Level> levels_;
};

/// write_tier_metrics's visitor: a leaf's series at once, a level's counters kept for the end, an erased
/// backend's hidden tiers by the backend itself.
struct TierMetricsVisit {
    PrometheusWriter& out;
    LevelStats& levels;

    template <class T>
    void operator()(std::string_view path, const T& t) const {
        if constexpr (ReportsStats<T>) {
            if constexpr (TieredBackend<T>)
                levels.add(path, t.stats());
            else
                write_backend_stats(out, path, t.stats());
        }
        if constexpr (ReportsDurations<T> && !TieredBackend<T>) write_backend_stats(out, path, t.durations());
    }

    template <class T>
        requires ExportsTierMetrics<T>
    void operator()(ErasedTiers, std::string_view prefix, const T& t) const { t.write_metrics(out, prefix); }
};

/// Adds the series of `tier` and of every tier under it, labelled with their paths under `prefix`: leaf
/// tiers' stats and duration histograms as the walk meets them, then the composition levels' counters
/// (those sharing a path summed). An erased backend (ExportsTierMetrics) writes its hidden tiers itself.
template <class Tier>
void write_tier_metrics(PrometheusWriter& out, const Tier& tier, std::string_view prefix) {
    LevelStats levels;
    TierMetricsVisit visit{out, levels};
    visit_tiers(tier, prefix, visit);
    levels.write(out);
}

}  // namespace hitbox::detail
