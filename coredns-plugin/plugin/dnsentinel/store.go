package dnsentinel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/dnsentinel/coredns-plugin/contract"
)

// lookupResult is what Redis knows about one query name.
type lookupResult struct {
	Verdict  string   // the compact verdict value of the exact name, "" when none
	Actions  []string // vetted action per candidate, "" when no entry
	CacheHit bool     // answered from the local client-side cache, no round trip

	// parsed is Verdict parsed when it was fetched, so cached lookups skip the parse;
	// nil means parse on use.
	parsed *parsedVerdict
}

// parsedVerdict is a compact verdict value and whether it parsed (SPEC §3).
type parsedVerdict struct {
	v   contract.Verdict
	err error
}

// verdictOf parses res.Verdict unless that was done when it was fetched.
func (res *lookupResult) verdictOf() (contract.Verdict, error) {
	if res.parsed != nil {
		return res.parsed.v, res.parsed.err
	}
	return contract.ParseVerdict(res.Verdict)
}

// store reads verdicts and vetted decisions; the handler only sees this interface so unit
// tests run without Redis.
type store interface {
	lookup(ctx context.Context, p *parsed) (lookupResult, error)
	connected() bool
	close()
}

var errUnavailable = errors.New("redis not connected yet")

// redisStore reads through rueidis server-assisted client-side caching: a GET of the verdict
// key and an HMGET of the vetted hash, both DoCache'd, so a repeated name costs no round trip
// and any write to either key (by a worker or `dnsentinel lists`) invalidates every
// instance's copy at once (RESP3 CLIENT TRACKING).
type redisStore struct {
	prefix string
	ttl    time.Duration
	opt    rueidis.ClientOption
	where  string // for logs: the address, or the master name and its Sentinels
	client atomic.Pointer[rueidis.Client]
	ctx    context.Context
	cancel context.CancelFunc
	log    func(format string, args ...any)

	refreshSlots chan struct{}
	hot          *hotCache
}

func newRedisStore(cfg Config, logf func(string, ...any)) *redisStore {
	ctx, cancel := context.WithCancel(context.Background())
	hot := newHotCache(cfg.CacheSize, cfg.CacheTTL, contract.VerdictKey(cfg.RedisPrefix, ""), contract.VettedKey(cfg.RedisPrefix))
	return &redisStore{
		hot:    hot,
		prefix: cfg.RedisPrefix,
		ttl:    cfg.CacheTTL,
		where:  redisWhere(cfg),
		opt: withSentinel(cfg, rueidis.ClientOption{
			InitAddress:       []string{cfg.RedisAddr},
			Username:          cfg.RedisUser,
			Password:          cfg.RedisPassword,
			SelectDB:          cfg.RedisDB,
			TLSConfig:         cfg.RedisTLS,
			CacheSizeEachConn: max(cfg.CacheSize*cacheEntryBytes, 1<<20),
			ConnWriteTimeout:  2 * time.Second,
			Dialer:            netDialer(),
			DisableRetry:      true, // the DNS answer cannot wait for a retry: fail open instead
			// One connection: one local cache (rueidis keeps one per connection), and the two
			// reads of a lookup go down one pipe; with several, DoMultiCache fans the verdict
			// key and the vetted hash out to goroutines per connection even on a cache hit.
			PipelineMultiplex: -1,
			OnInvalidations:   hot.invalidate,
		}),
		ctx:          ctx,
		cancel:       cancel,
		log:          logf,
		refreshSlots: make(chan struct{}, maxRefreshes),
	}
}

// withSentinel points opt at the Sentinels when redis_sentinel is set: rueidis then asks them
// for the master, follows +switch-master events (and re-checks every sentinelRefresh, in case
// one was missed) and moves its connection, so a failover needs no restart. The lookups in
// between fail open like any Redis error; the local caches are flushed when the old
// connection closes (OnInvalidations(nil)), so no stale verdict outlives the switch.
func withSentinel(cfg Config, opt rueidis.ClientOption) rueidis.ClientOption {
	if cfg.SentinelMaster == "" {
		return opt
	}
	opt.InitAddress = cfg.SentinelAddrs
	opt.Sentinel = rueidis.SentinelOption{
		MasterSet:               cfg.SentinelMaster,
		Username:                cfg.SentinelUser,
		Password:                cfg.SentinelPassword,
		TLSConfig:               cfg.RedisTLS,
		Dialer:                  netDialer(),
		TopologyRefreshInterval: sentinelRefresh,
	}
	return opt
}

const sentinelRefresh = 5 * time.Second

// oneLine is err's text on one log line (rueidis adds hints on lines of their own).
func oneLine(err error) string { return strings.Join(strings.Fields(err.Error()), " ") }

func redisWhere(cfg Config) string {
	if cfg.SentinelMaster == "" {
		return cfg.RedisAddr
	}
	return fmt.Sprintf("master %s via sentinels %s", cfg.SentinelMaster, strings.Join(cfg.SentinelAddrs, ","))
}

// cacheEntryBytes converts cache_size (names) into rueidis' byte budget: a name costs two
// entries (the verdict GET and the vetted HMGET, whose command text holds every candidate),
// about 1 KiB as rueidis counts them; with less, a working set near cache_size thrashes.
const cacheEntryBytes = 2048

// connect dials in the background until Redis answers; rueidis itself reconnects after
// that (and flushes its local cache on reconnect, so no invalidation is missed for long).
func (s *redisStore) connect() {
	backoff := 100 * time.Millisecond
	for {
		c, err := rueidis.NewClient(s.opt)
		if err == nil {
			s.client.Store(&c)
			return
		}
		s.log("redis %s not reachable (%s); queries fail open until it is, retrying", s.where, oneLine(err))
		select {
		case <-s.ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func (s *redisStore) connected() bool { return s.client.Load() != nil }

func (s *redisStore) close() {
	s.cancel()
	if c := s.client.Load(); c != nil {
		(*c).Close()
	}
}

func (s *redisStore) lookup(ctx context.Context, p *parsed) (lookupResult, error) {
	cp := s.client.Load()
	if cp == nil {
		return lookupResult{}, errUnavailable
	}
	now := time.Now()
	if res, ok := s.hot.get(p.name.Name, now); ok {
		return res, nil
	}
	gen := s.hot.gen.Load()
	cmds := p.redisCmds.Load()
	if cmds == nil {
		cmds = s.commands(*cp, p)
		p.redisCmds.Store(cmds)
	}
	res, err := s.fetch(ctx, *cp, cmds, len(p.cands))
	switch {
	case err == nil && !s.opt.DisableCache:
		s.hot.put(p.name.Name, res, gen, now)
	case err != nil && ctx.Err() != nil:
		s.refresh(*cp, cmds, len(p.cands))
	}
	return res, err
}

// commands builds the two cached reads of a name once, pinned so rueidis never recycles
// them and every later query of the name reuses them (the name cache holds them).
func (s *redisStore) commands(c rueidis.Client, p *parsed) *[2]rueidis.CacheableTTL {
	return &[2]rueidis.CacheableTTL{
		rueidis.CT(c.B().Get().Key(contract.VerdictKey(s.prefix, p.name.Name)).Cache().Pin(), s.ttl),
		rueidis.CT(c.B().Hmget().Key(contract.VettedKey(s.prefix)).Field(p.cands...).Cache().Pin(), s.ttl),
	}
}

// refresh repeats a lookup that ran out of the query's time in the background, with a
// longer deadline, so that its answer lands in the local cache for the next query of the
// name. Without it, a loaded Redis (round trips above redis_timeout) would never fill the
// cache: rueidis drops a pending entry when its caller gives up. Bounded by refreshSlots.
func (s *redisStore) refresh(c rueidis.Client, cmds *[2]rueidis.CacheableTTL, ncands int) {
	select {
	case s.refreshSlots <- struct{}{}:
	default:
		return // enough refreshes in flight already (Redis is down or very slow)
	}
	go func() {
		defer func() { <-s.refreshSlots }()
		ctx, cancel := context.WithTimeout(s.ctx, refreshTimeout)
		defer cancel()
		_, _ = s.fetch(ctx, c, cmds, ncands)
	}()
}

const (
	refreshTimeout = 2 * time.Second
	maxRefreshes   = 256
)

func (s *redisStore) fetch(ctx context.Context, c rueidis.Client, cmds *[2]rueidis.CacheableTTL, ncands int) (lookupResult, error) {
	resps := c.DoMultiCache(ctx, cmds[0], cmds[1])
	res := lookupResult{CacheHit: resps[0].IsCacheHit() && resps[1].IsCacheHit()}
	v, err := resps[0].ToString()
	if err != nil && !rueidis.IsRedisNil(err) {
		return res, err
	}
	res.Verdict = v
	if v != "" {
		pv, perr := contract.ParseVerdict(v)
		res.parsed = &parsedVerdict{v: pv, err: perr}
	}
	arr, err := resps[1].ToArray()
	if err != nil {
		return res, err
	}
	res.Actions = make([]string, ncands)
	for i := range arr {
		if i < ncands {
			res.Actions[i] = vettedAction(arr[i])
		}
	}
	return res, nil
}

// vettedAction extracts the action of a vetted record JSON without a full decode on the hot
// path; a record that does not parse counts as no entry.
func vettedAction(m rueidis.RedisMessage) string {
	s, err := m.ToString()
	if err != nil || s == "" {
		return ""
	}
	return parseVettedAction(s)
}

func parseVettedAction(record string) string {
	var r struct {
		Action string `json:"action"`
	}
	if json.Unmarshal([]byte(record), &r) != nil {
		return ""
	}
	switch r.Action {
	case contract.DecisionAllow, contract.DecisionBlock, contract.DecisionHoneypot:
		return r.Action
	}
	return ""
}

func netDialer() net.Dialer { return net.Dialer{Timeout: time.Second, KeepAlive: 30 * time.Second} }
