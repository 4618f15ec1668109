package dnsentinel

import (
	"slices"
	"sync"
	"sync/atomic"

	"github.com/coredns/coredns/plugin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/dnsentinel/coredns-plugin/contract"
)

const subsystem = "dnsentinel"

var (
	queriesTotal = counterVec("queries_total",
		"Queries seen by dnsentinel, by decision (SPEC §1.4) and action taken.", "decision", "action")
	cacheLookups = counterVec("cache_lookups_total",
		"Verdict lookups by where they were answered: local (client-side cache hit) or redis (miss, one round trip).", "result")
	redisErrors = counterVec("redis_errors_total",
		"Failed verdict lookups by reason: timeout, error, unavailable (never connected yet), bad_value.", "reason")
	lookupDuration = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: plugin.Namespace, Subsystem: subsystem, Name: "lookup_duration_seconds",
		Help:    "Time to decide a query (local cache or Redis), by where it was answered.",
		Buckets: []float64{0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025},
	}, []string{"server", "result"})
	eventsProduced = counterVec("events_produced_total", "Query events acknowledged by Kafka.")
	eventsDropped  = counterVec("events_dropped_total",
		"Query events dropped, by reason: buffer_full, kafka_error, too_large, closed.", "reason")
	eventsBuffered    = gaugeVec("events_buffered", "Query events waiting in the producer buffer.")
	eventsBufferLimit = gaugeVec("events_buffer_limit",
		"The size of the producer buffer (kafka_buffer): buffered/limit is the fill ratio.")
)

// counterVec and gaugeVec register a coredns_dnsentinel_<name> metric labelled by server and
// then by labels.
func counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	return promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace, Subsystem: subsystem, Name: name, Help: help,
	}, append([]string{"server"}, labels...))
}

func gaugeVec(name, help string, labels ...string) *prometheus.GaugeVec {
	return promauto.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: plugin.Namespace, Subsystem: subsystem, Name: name, Help: help,
	}, append([]string{"server"}, labels...))
}

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

// The decision and action labels of queries_total, in the vocabulary's order (contract).
var (
	decisionLabels = contract.MetricDecisions
	actionLabels   = contract.Actions
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
