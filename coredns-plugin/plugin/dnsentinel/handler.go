// Package dnsentinel is a CoreDNS plugin that answers names with a malicious verdict or a
// vetted block from the dnsentinel Redis verdict cache and emits one event per query to Kafka.
package dnsentinel

import (
	"context"
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/metrics"
	"github.com/coredns/coredns/plugin/pkg/dnstest"
	clog "github.com/coredns/coredns/plugin/pkg/log"
	"github.com/coredns/coredns/request"
	"github.com/miekg/dns"

	"github.com/dnsentinel/coredns-plugin/contract"
)

var log = clog.NewWithPlugin(pluginName)

// Handler is the dnsentinel plugin.
type Handler struct {
	Next plugin.Handler

	cfg   Config
	store store
	emit  emitter
	names *nameCache

	deadlines *deadlines
	metrics   metricsCache

	// newStore and newEmitter are replaced by tests.
	newStore   func(Config) store
	newEmitter func(Config) (emitter, error)

	stopOnce  sync.Once
	stopGauge chan struct{}
}

func newHandler(cfg Config) *Handler {
	return &Handler{
		cfg:       cfg,
		names:     newNameCache(max(cfg.CacheSize, 1024)),
		deadlines: newDeadlines(cfg.RedisTimeout),
		newStore: func(cfg Config) store {
			s := newRedisStore(cfg, log.Warningf)
			go s.connect()
			return s
		},
		newEmitter: func(cfg Config) (emitter, error) { return newKafkaEmitter(cfg) },
		stopGauge:  make(chan struct{}),
	}
}

func (h *Handler) start() error {
	h.store = h.newStore(h.cfg)
	if !h.cfg.NoEvents {
		em, err := h.newEmitter(h.cfg)
		if err != nil {
			return plugin.Error(pluginName, err)
		}
		h.emit = em
		eventsBufferLimit.WithLabelValues(h.cfg.ServerID).Set(float64(h.cfg.KafkaBuffer))
		go h.reportBuffer()
	}
	return nil
}

func (h *Handler) stop() error {
	h.stopOnce.Do(func() {
		close(h.stopGauge)
		if h.emit != nil {
			h.emit.close()
		}
		if h.store != nil {
			h.store.close()
		}
	})
	return nil
}

func (h *Handler) reportBuffer() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-h.stopGauge:
			return
		case <-t.C:
			eventsBuffered.WithLabelValues(h.cfg.ServerID).Set(float64(h.emit.buffered()))
		}
	}
}

// Ready implements ready.Readiness: ready once Redis has been reached (or at once with
// `ready always`).
func (h *Handler) Ready() bool {
	return h.cfg.ReadyAlways || (h.store != nil && h.store.connected())
}

// Name implements plugin.Handler.
func (h *Handler) Name() string { return pluginName }

// ServeDNS implements plugin.Handler.
func (h *Handler) ServeDNS(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	state := request.Request{W: w, Req: r}
	qname := state.Name()
	if plugin.Zones(h.cfg.Zones).Matches(qname) == "" {
		return plugin.NextOrFailure(h.Name(), h.Next, ctx, w, r)
	}
	start := time.Now()
	sm := h.metrics.get(metrics.WithServer(ctx))

	ev := &event{V: 1, TS: start.UnixMilli(), QType: state.Type(), Client: state.IP(), Source: "live",
		Server: h.cfg.ServerID, Proto: state.Proto(), Action: ActionPass}
	pn := h.names.get(qname)
	nerr, key := pn.err, pn.key
	if nerr != nil {
		ev.Name = pn.raw
	} else {
		ev.Name = pn.name.Name
	}

	decision, reason, failed := contract.DecisionUnknown, "", false
	switch {
	case nerr != nil:
		// an invalid name cannot have an entry; answered by the next plugin as usual
	case plugin.Zones(h.cfg.Exclude).Matches(qname) != "":
		decision = ""
	default:
		decision, reason, failed = h.decide(sm, pn)
	}
	if decision != "" {
		ev.Decision = decision
	}

	switch {
	case failed && h.cfg.FailClosed && !h.neverBlock(state):
		m := new(dns.Msg)
		m.SetRcode(r, dns.RcodeRefused)
		addEDE(m, state, dns.ExtendedErrorCodeNotReady, "dnsentinel: verdict cache unavailable (fail closed)")
		ev.Action, ev.Rcode = ActionRefused, dns.RcodeToString[dns.RcodeRefused]
		ev.LatencyUS = time.Since(start).Microseconds()
		_ = w.WriteMsg(m)
		h.finish(sm, key, ev)
		return dns.RcodeSuccess, nil
	case contract.Blocking(decision) && !h.neverBlock(state) && !h.cfg.Fall.Through(qname):
		m, action := h.blockAnswer(state, decision, reason)
		ev.Action, ev.Rcode = action, dns.RcodeToString[m.Rcode]
		ev.LatencyUS = time.Since(start).Microseconds()
		_ = w.WriteMsg(m)
		h.finish(sm, key, ev)
		return dns.RcodeSuccess, nil
	}

	ev.LatencyUS = time.Since(start).Microseconds()
	if h.emit == nil {
		sm.query(decisionLabel(ev.Decision), ev.Action)
		return plugin.NextOrFailure(h.Name(), h.Next, ctx, w, r)
	}
	rec := dnstest.NewRecorder(w)
	rc, err := plugin.NextOrFailure(h.Name(), h.Next, ctx, rec, r)
	if plugin.ClientWrite(rc) || rec.Msg != nil {
		ev.Rcode = dns.RcodeToString[rec.Rcode]
	} else {
		ev.Rcode = dns.RcodeToString[rc] // the server writes this error after we return
	}
	h.finish(sm, key, ev)
	return rc, err
}

// finish counts the query and hands its event to Kafka (after the answer is written).
func (h *Handler) finish(sm *serverMetrics, key []byte, ev *event) {
	sm.query(decisionLabel(ev.Decision), ev.Action)
	if h.emit != nil {
		h.emit.emit(key, ev)
	}
}

// decide looks the name up (local cache, else Redis within redis_timeout). failed means the
// lookup did not complete and the decision is the fail-open "unknown".
func (h *Handler) decide(sm *serverMetrics, pn *parsed) (decision, reason string, failed bool) {
	cands := pn.cands
	t0 := time.Now()
	lctx := h.deadlines.get(t0)
	res, err := h.store.lookup(lctx, pn)
	if res.CacheHit {
		sm.localDur.Observe(time.Since(t0).Seconds())
	} else {
		sm.tripDur.Observe(time.Since(t0).Seconds())
	}
	if err != nil {
		redisErrors.WithLabelValues(sm.server, errorReason(err, lctx)).Inc()
		return contract.DecisionUnknown, "", true
	}
	if res.CacheHit {
		sm.localHits.Inc()
	} else {
		sm.trips.Inc()
	}
	label, model, score := "", "", ""
	if res.Verdict != "" {
		if v, err := contract.ParseVerdict(res.Verdict); err == nil {
			label, model, score = v.Label, v.Model, strconvScore(v.Score)
		} else {
			redisErrors.WithLabelValues(sm.server, "bad_value").Inc()
		}
	}
	decision = contract.Decide(cands, res.Actions, label)
	switch decision {
	case contract.DecisionBlock, contract.DecisionHoneypot:
		reason = "dnsentinel: vetted " + decision
	case contract.DecisionMalicious:
		reason = "dnsentinel: malicious (model " + model + ", score " + score + ")"
	}
	return decision, reason, false
}

func errorReason(err error, ctx context.Context) string {
	switch {
	case errors.Is(err, errUnavailable):
		return "unavailable"
	case errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil:
		return "timeout"
	default:
		return "error"
	}
}

// neverBlock reports whether the client is in a no_block CIDR.
func (h *Handler) neverBlock(state request.Request) bool {
	if len(h.cfg.NoBlock) == 0 {
		return false
	}
	ip, err := netip.ParseAddr(state.IP())
	if err != nil {
		return false
	}
	ip = ip.Unmap()
	for _, p := range h.cfg.NoBlock {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

func decisionLabel(d string) string {
	if d == "" {
		return "excluded"
	}
	return d
}

func strconvScore(s float64) string { return strconv.FormatFloat(s, 'f', 4, 64) }

// rawName is the event name of a query that fails normalization: the presentation form
// without CoreDNS's trailing dot, "." for the root, at most 1024 bytes (SPEC §2.2).
func rawName(qname string) string {
	s := strings.TrimSuffix(qname, ".")
	if s == "" {
		return "."
	}
	if len(s) > maxRawName {
		s = s[:maxRawName]
	}
	return s
}
