// Package dnsentinel is a CoreDNS plugin that answers names with a malicious verdict or a
// vetted block from the dnsentinel Redis verdict cache and emits one event per query to Kafka.
package dnsentinel

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/metrics"
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
//
// The hot path is kept lean on purpose (docs/BENCHMARKS.md, CoreDNS plugin): the query name
// is looked up raw in the name cache (no per-query lower-casing), the client address is
// formatted without request.IP's String+SplitHostPort, the event comes
// from a pool, and the clock is read three times. ServeDNS itself keeps a small stack frame
// because it stays on the stack while the rest of the plugin chain runs (miekg/dns serves each
// query on a fresh goroutine, so every frame under the chain can cost a stack growth): the
// decision and any answer of our own are made in serve, which returns before Next runs.
func (h *Handler) ServeDNS(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	raw := "."
	if len(r.Question) > 0 {
		raw = r.Question[0].Name
	}
	pn := h.names.get(raw)
	if plugin.Zones(h.cfg.Zones).Matches(pn.qname) == "" {
		return plugin.NextOrFailure(h.Name(), h.Next, ctx, w, r)
	}
	growStack()
	qs := scratchPool.Get().(*queryScratch)
	if h.serve(ctx, w, r, pn, qs) {
		qs.release()
		return dns.RcodeSuccess, nil
	}
	if h.emit == nil {
		qs.release()
		return plugin.NextOrFailure(h.Name(), h.Next, ctx, w, r)
	}
	rec := &rcodeRecorder{ResponseWriter: w}
	rc, err := plugin.NextOrFailure(h.Name(), h.Next, ctx, rec, r)
	if plugin.ClientWrite(rc) || rec.written {
		qs.ev.Rcode = dns.RcodeToString[rec.rcode]
	} else {
		qs.ev.Rcode = dns.RcodeToString[rc] // the server writes this error after we return
	}
	h.finish(qs.sm, pn.key, &qs.ev)
	qs.release()
	return rc, err
}

// growStack grows the query goroutine's stack in one step, while the plugin chain above
// ServeDNS is still short. miekg/dns serves every query on a fresh goroutine with a small
// stack; without this, the stack doubles (twice, on the loaded 2-core bench machine) midway
// through the plugins after us, and each doubling copies and re-walks every frame of the
// chain: about a fifth of CoreDNS's CPU per query in profiles. One early growth to a size
// that fits the rest of the query costs a fraction of that (docs/BENCHMARKS.md, CoreDNS
// plugin). franz-go's broker workers (kgo.growStack) and CockroachDB's growstack do the same.
//
//go:noinline
func growStack() {
	var b [stackReserveBytes]byte
	b[0] = 1
	runtime.KeepAlive(&b)
}

// stackReserveBytes is the frame of growStack. With the frames below ServeDNS it takes the
// stack to 16 KiB at once: measured, 4 KiB reached 8 KiB, and the plugins after us (template
// answers) then still grew it to 16 KiB, copying the deep chain.
const stackReserveBytes = 6 << 10

// serve decides a query in the filtered zones and fills in its event. It answers blocked
// queries (and, failing closed, unanswerable ones) itself, counts and emits them and returns
// true; it returns false for queries to pass on (counted here when no event follows).
//
//go:noinline
func (h *Handler) serve(ctx context.Context, w dns.ResponseWriter, r *dns.Msg, pn *parsed, qs *queryScratch) bool {
	start := time.Now()
	sm := h.metrics.get(metrics.WithServer(ctx))
	qs.sm = sm
	state := request.Request{W: w, Req: r}
	ev := &qs.ev
	*ev = event{V: 1, TS: start.UnixMilli(), QType: state.Type(), Client: clientIP(w, &state),
		Source: contract.SourceLive, Server: h.cfg.ServerID, Proto: state.Proto(), Action: contract.ActionPass}
	nerr, key, qname := pn.err, pn.key, pn.qname
	if nerr != nil {
		ev.Name = pn.raw
	} else {
		ev.Name = pn.name.Name
	}

	decision, reason, failed := contract.DecisionUnknown, "", false
	switch {
	case nerr != nil:
		// an invalid name cannot have an entry; answered by the next plugin as usual
	case len(h.cfg.Exclude) > 0 && plugin.Zones(h.cfg.Exclude).Matches(qname) != "":
		decision = ""
	default:
		decision, reason, failed = h.decide(sm, pn, start)
	}
	if decision != "" {
		ev.Decision = decision
	}

	switch {
	case failed && h.cfg.FailClosed && !h.neverBlock(&state):
		m := new(dns.Msg)
		m.SetRcode(r, dns.RcodeRefused)
		addEDE(m, state, dns.ExtendedErrorCodeNotReady, "dnsentinel: verdict cache unavailable (fail closed)")
		ev.Action, ev.Rcode = contract.ActionRefused, dns.RcodeToString[dns.RcodeRefused]
		ev.LatencyUS = time.Since(start).Microseconds()
		_ = w.WriteMsg(m)
		h.finish(sm, key, ev)
		return true
	case contract.Blocking(decision) && !h.neverBlock(&state) && !h.cfg.Fall.Through(qname):
		m, action := h.blockAnswer(state, decision, reason)
		ev.Action, ev.Rcode = action, dns.RcodeToString[m.Rcode]
		ev.LatencyUS = time.Since(start).Microseconds()
		_ = w.WriteMsg(m)
		h.finish(sm, key, ev)
		return true
	}
	ev.LatencyUS = time.Since(start).Microseconds()
	if h.emit == nil {
		sm.query(decisionLabel(ev.Decision), ev.Action)
	}
	return false
}

// queryScratch is the per-query state that must live on the heap (the event goes to the
// emitter as a pointer), pooled so that a query costs no allocation for it: emitters encode
// the event before emit returns. The recorder is not pooled: plugins after us may keep the
// writer past their ServeDNS (cache's prefetch wraps it in a goroutine).
type queryScratch struct {
	ev event
	sm *serverMetrics
}

var scratchPool = sync.Pool{New: func() any { return new(queryScratch) }}

func (qs *queryScratch) release() {
	*qs = queryScratch{}
	scratchPool.Put(qs)
}

// rcodeRecorder notes the rcode of the answer the next plugin writes, for the event. Unlike
// dnstest.Recorder it does not compute the message length (a compression map per answer)
// nor read the clock.
type rcodeRecorder struct {
	dns.ResponseWriter
	rcode   int
	written bool
}

// WriteMsg implements dns.ResponseWriter.
func (r *rcodeRecorder) WriteMsg(m *dns.Msg) error {
	r.rcode, r.written = m.Rcode, true
	return r.ResponseWriter.WriteMsg(m)
}

// clientIP is request.Request.IP for UDP and TCP clients without formatting and splitting
// "ip:port"; other address types go through request.IP.
func clientIP(w dns.ResponseWriter, state *request.Request) string {
	var ip net.IP
	var zone string
	switch a := w.RemoteAddr().(type) {
	case *net.UDPAddr:
		ip, zone = a.IP, a.Zone
	case *net.TCPAddr:
		ip, zone = a.IP, a.Zone
	default:
		return state.IP()
	}
	if len(ip) == 0 {
		return state.IP()
	}
	if zone != "" {
		return ip.String() + "%" + zone
	}
	return ip.String()
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
func (h *Handler) decide(sm *serverMetrics, pn *parsed, t0 time.Time) (decision, reason string, failed bool) {
	cands := pn.cands
	lctx := h.deadlines.get(t0)
	res, err := h.store.lookup(lctx, pn)
	if took := time.Since(t0).Seconds(); res.CacheHit {
		sm.localDur.Observe(took)
	} else {
		sm.tripDur.Observe(took)
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
	var v contract.Verdict
	if res.Verdict != "" {
		var perr error
		if v, perr = res.verdictOf(); perr != nil {
			v = contract.Verdict{}
			redisErrors.WithLabelValues(sm.server, "bad_value").Inc()
		}
	}
	label := v.Label
	decision = contract.Decide(cands, res.Actions, label)
	switch decision {
	case contract.DecisionBlock, contract.DecisionHoneypot:
		reason = "dnsentinel: vetted " + decision
	case contract.DecisionMalicious:
		reason = "dnsentinel: malicious (model " + v.Model + ", score " + strconvScore(v.Score) + ")"
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
func (h *Handler) neverBlock(state *request.Request) bool {
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

// decisionLabel is the queries_total decision of an event: its decision, or excluded.
func decisionLabel(d string) string {
	if d == "" {
		return contract.Excluded
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
