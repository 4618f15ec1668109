package dnsentinel

import (
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/redis/rueidis/mock"
)

func TestHotCache(t *testing.T) {
	now := time.Now()
	newCache := func() *hotCache {
		c := newHotCache(4, time.Second, "p:v1:verdict:", "p:v1:vetted")
		for _, n := range []string{"a.com", "b.com"} {
			c.put(n, lookupResult{Verdict: "m|0.9|x|1"}, c.gen.Load(), now)
		}
		return c
	}
	has := func(c *hotCache, n string, at time.Time) bool { _, ok := c.get(n, at); return ok }

	c := newCache()
	if res, ok := c.get("a.com", now); !ok || !res.CacheHit || res.Verdict != "m|0.9|x|1" {
		t.Fatalf("get a.com = %+v, %v", res, ok)
	}
	if has(c, "a.com", now.Add(2*time.Second)) {
		t.Error("entry outlived the TTL")
	}

	tests := []struct {
		name  string
		keys  []string // nil = flush
		flush bool
		keepA bool
		keepB bool
	}{
		{"verdict key drops only its name", []string{"p:v1:verdict:a.com"}, false, false, true},
		{"vetted hash drops everything", []string{"p:v1:vetted"}, false, false, false},
		{"flush drops everything", nil, true, false, false},
		{"other keys drop nothing", []string{"q:v1:verdict:a.com", "p:v1:vetted:log"}, false, true, true},
	}
	for _, tc := range tests {
		c := newCache()
		gen := c.gen.Load()
		if tc.flush {
			c.invalidate(nil)
		} else {
			msgs := make([]rueidis.RedisMessage, 0, len(tc.keys))
			for _, k := range tc.keys {
				msgs = append(msgs, mock.RedisString(k))
			}
			c.invalidate(msgs)
		}
		if has(c, "a.com", now) != tc.keepA || has(c, "b.com", now) != tc.keepB {
			t.Errorf("%s: a.com kept %v (want %v), b.com kept %v (want %v)", tc.name,
				has(c, "a.com", now), tc.keepA, has(c, "b.com", now), tc.keepB)
		}
		// a lookup that started before the invalidation must not be stored
		c.put("late.com", lookupResult{}, gen, now)
		if has(c, "late.com", now) {
			t.Errorf("%s: a lookup that raced an invalidation was stored", tc.name)
		}
	}

	c = newCache()
	for i := 0; i < 20; i++ {
		c.put(string(rune('a'+i))+".net", lookupResult{}, c.gen.Load(), now)
		if len(c.cur) > 4 || len(c.prev) > 4 {
			t.Fatalf("hot cache grew to %d+%d; bound is 2*4", len(c.cur), len(c.prev))
		}
	}
}
