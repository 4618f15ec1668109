package dnsentinel

import (
	"slices"
	"sync"
	"sync/atomic"

	"github.com/coredns/coredns/plugin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

const subsystem = "dnsentinel"

var (
	queriesTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace, Subsystem: subsystem, Name: "queries_total",
		Help: "Queries seen by dnsentinel, by decision (SPEC §1.4) and action taken.",
	}, []string{"server", "decision", "action"})
	cacheLookups = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace, Subsystem: subsystem, Name: "cache_lookups_total",
		Help: "Verdict lookups by where they were answered: local (client-side cache hit) or redis (miss, one round trip).",
	}, []string{"server", "result"})
	redisErrors = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace, Subsystem: subsystem, Name: "redis_errors_total",
		Help: "Failed verdict lookups by reason: timeout, error, unavailable (never connected yet), bad_value.",
	}, []string{"server", "reason"})
	lookupDuration = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: plugin.Namespace, Subsystem: subsystem, Name: "lookup_duration_seconds",
		Help:    "Time to decide a query (local cache or Redis), by where it was answered.",
		Buckets: []float64{0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025},
	}, []string{"server", "result"})
	eventsProduced = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace, Subsystem: subsystem, Name: "events_produced_total",
		Help: "Query events acknowledged by Kafka.",
	}, []string{"server"})
	eventsDropped = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace, Subsystem: subsystem, Name: "events_dropped_total",
		Help: "Query events dropped, by reason: buffer_full, kafka_error, too_large, closed.",
	}, []string{"server", "reason"})
	eventsBuffered = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: plugin.Namespace, Subsystem: subsystem, Name: "events_buffered",
		Help: "Query events waiting in the producer buffer.",
	}, []string{"server"})
	eventsBufferLimit = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: plugin.Namespace, Subsystem: subsystem, Name: "events_buffer_limit",
		Help: "The size of the producer buffer (kafka_buffer): buffered/limit is the fill ratio.",
	}, []string{"server"})
)

// serverMetrics holds the label-resolved metrics of one CoreDNS server block, so the hot
// path does not hash label values for every query (WithLabelValues was 4% of CPU).
type serverMetrics struct {
	server            string
	localHits, trips  prometheus.Counter
	localDur, tripDur prometheus.Observer

	// queries by decision and action index: resolved on first use (so only series that
	// occurred are exported, as with WithLabelValues), then one atomic load per query.
	queries [len(decisionLabels)][len(actionLabels)]atomic.Pointer[prometheus.Counter]
}

var (
	decisionLabels = [...]string{"allow", "block", "honeypot", "malicious", "uncertain", "benign", "unknown", "excluded"}
	actionLabels   = [...]string{ActionPass, ActionNXDomain, ActionNoData, ActionRefused, ActionNull, ActionSinkhole, ActionHoneypot}
)

// metricsCache maps a server label to its serverMetrics. Nearly always one server uses a
// handler, so the last one found is checked first (a string compare instead of a sync.Map
// read per query).
type metricsCache struct {
	m    sync.Map
	last atomic.Pointer[serverMetrics]
}

func (c *metricsCache) get(server string) *serverMetrics {
	if sm := c.last.Load(); sm != nil && sm.server == server {
		return sm
	}
	if v, ok := c.m.Load(server); ok {
		c.last.Store(v.(*serverMetrics))
		return v.(*serverMetrics)
	}
	sm := &serverMetrics{
		server:    server,
		localHits: cacheLookups.WithLabelValues(server, "local"),
		trips:     cacheLookups.WithLabelValues(server, "redis"),
		localDur:  lookupDuration.WithLabelValues(server, "local"),
		tripDur:   lookupDuration.WithLabelValues(server, "redis"),
	}
	v, _ := c.m.LoadOrStore(server, sm)
	c.last.Store(v.(*serverMetrics))
	return v.(*serverMetrics)
}

func (sm *serverMetrics) query(decision, action string) {
	d, a := slices.Index(decisionLabels[:], decision), slices.Index(actionLabels[:], action)
	if d < 0 || a < 0 {
		queriesTotal.WithLabelValues(sm.server, decision, action).Inc()
		return
	}
	slot := &sm.queries[d][a]
	c := slot.Load()
	if c == nil {
		counter := queriesTotal.WithLabelValues(sm.server, decision, action)
		slot.CompareAndSwap(nil, &counter)
		c = slot.Load()
	}
	(*c).Inc()
}
