package dnsentinel

import (
	"strings"
	"sync"
	"sync/atomic"

	"github.com/miekg/dns"
	"github.com/redis/rueidis"

	"github.com/dnsentinel/coredns-plugin/contract"
)

// parsed is everything the hot path derives from a query name alone: a pure function of
// the name, so it can be cached without any invalidation (unlike decisions, which always
// go through the Redis client-side cache).
type parsed struct {
	qname string // CoreDNS's form of the query name (request.Request.Name: lower case, trailing dot)
	name  contract.Name
	err   error
	key   []byte   // Kafka routing key
	cands []string // vetted candidates, nil for an invalid name
	raw   string   // event name of an invalid name

	redisCmds atomic.Pointer[[2]rueidis.CacheableTTL] // built by redisStore on first use
}

func parseName(qname string) *parsed {
	n, err := contract.Normalize(qname)
	if err != nil {
		raw := rawName(qname)
		return &parsed{err: err, key: []byte(raw), raw: raw}
	}
	return &parsed{name: n, key: n.RoutingKey(), cands: contract.Candidates(n.Name)}
}

// coreDNSName is request.Request.Name of a question name, computed once per cached name
// instead of once per query.
func coreDNSName(raw string) string { return strings.ToLower(dns.Name(raw).String()) }

// nameCache is a bounded two-generation map: lookups hit the current generation, then the
// previous one (promoting the entry); when the current one is full it becomes the previous
// one. Popular names stay, one-off names (random-subdomain floods) age out, and memory is
// bounded by 2*size entries with no per-entry bookkeeping.
type nameCache struct {
	mu        sync.Mutex
	size      int
	cur, prev map[string]*parsed
}

func newNameCache(size int) *nameCache {
	return &nameCache{size: size, cur: make(map[string]*parsed, size)}
}

// get is keyed by the question name as it came off the wire (any case), so a repeated name
// costs one map read: no lower-casing or escaping per query.
func (c *nameCache) get(raw string) *parsed {
	c.mu.Lock()
	p, ok := c.cur[raw]
	if !ok {
		if p, ok = c.prev[raw]; ok {
			c.put(raw, p)
		}
	}
	c.mu.Unlock()
	if ok {
		return p
	}
	qname := coreDNSName(raw)
	p = parseName(qname)
	p.qname = qname
	c.mu.Lock()
	c.put(raw, p)
	c.mu.Unlock()
	return p
}

func (c *nameCache) put(qname string, p *parsed) {
	if len(c.cur) >= c.size {
		c.prev, c.cur = c.cur, make(map[string]*parsed, c.size)
	}
	c.cur[qname] = p
}
