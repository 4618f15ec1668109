package dnsentinel

import (
	"fmt"
	"testing"
)

func TestNameCache(t *testing.T) {
	c := newNameCache(4)
	a := c.get("WWW.Example.com.")
	if a.err != nil || a.name.Name != "www.example.com" || string(a.key) != "example.com" || len(a.cands) != 6 {
		t.Fatalf("parsed %+v", a)
	}
	if c.get("WWW.Example.com.") != a {
		t.Error("second get did not hit the cache")
	}
	bad := c.get("a\\ b.com.")
	if bad.err == nil || bad.raw != "a\\ b.com" || string(bad.key) != "a\\ b.com" || bad.cands != nil {
		t.Errorf("invalid name parsed %+v", bad)
	}
	for i := 0; i < 20; i++ {
		c.get(fmt.Sprintf("n%d.example.com.", i))
		if len(c.cur) > 4 || len(c.prev) > 4 {
			t.Fatalf("cache grew to %d+%d entries; bound is 2*4", len(c.cur), len(c.prev))
		}
	}
}
