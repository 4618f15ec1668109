package dnsentinel

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
)

// hotCache keeps finished lookups by name in front of rueidis, so a repeated name costs a
// map read instead of two client-side cache reads. It stays exactly as fresh as rueidis'
// own cache: Redis invalidation messages (RESP3 CLIENT TRACKING, delivered by rueidis'
// OnInvalidations) drop the name whose verdict key changed, or everything when the vetted
// hash changed, Redis flushed, or the connection dropped. A lookup that raced with an
// invalidation is not stored (the generation check).
type hotCache struct {
	size      int
	ttl       time.Duration
	verdictKP string // "<prefix>:v1:verdict:"
	vettedKey string

	gen       atomic.Uint64
	mu        sync.RWMutex
	cur, prev map[string]hotEntry
}

type hotEntry struct {
	res     lookupResult
	expires int64 // unix nanoseconds
}

func newHotCache(size int, ttl time.Duration, verdictKeyPrefix, vettedKey string) *hotCache {
	return &hotCache{size: size, ttl: ttl, verdictKP: verdictKeyPrefix, vettedKey: vettedKey,
		cur: make(map[string]hotEntry)}
}

func (c *hotCache) get(name string, now time.Time) (lookupResult, bool) {
	c.mu.RLock()
	e, ok := c.cur[name]
	if !ok {
		e, ok = c.prev[name]
	}
	c.mu.RUnlock()
	if !ok || now.UnixNano() > e.expires {
		return lookupResult{}, false
	}
	return e.res, true
}

// put stores a lookup made while the generation was gen; a lookup that overlapped an
// invalidation may hold the old value and is dropped.
func (c *hotCache) put(name string, res lookupResult, gen uint64, now time.Time) {
	res.CacheHit = true
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen.Load() != gen {
		return
	}
	if len(c.cur) >= c.size {
		c.prev, c.cur = c.cur, make(map[string]hotEntry, c.size)
	}
	c.cur[name] = hotEntry{res: res, expires: now.Add(c.ttl).UnixNano()}
}

// invalidate is rueidis' OnInvalidations callback: nil keys mean everything.
func (c *hotCache) invalidate(keys []rueidis.RedisMessage) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen.Add(1)
	if keys == nil {
		c.clear()
		return
	}
	for _, k := range keys {
		key, err := k.ToString()
		switch {
		case err != nil || key == c.vettedKey:
			c.clear() // a vetted entry may cover any name
			return
		case strings.HasPrefix(key, c.verdictKP):
			name := key[len(c.verdictKP):]
			delete(c.cur, name)
			delete(c.prev, name)
		}
	}
}

func (c *hotCache) clear() {
	c.cur, c.prev = make(map[string]hotEntry), nil
}
