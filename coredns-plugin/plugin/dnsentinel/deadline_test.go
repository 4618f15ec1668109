package dnsentinel

import (
	"testing"
	"time"
)

func TestDeadlines(t *testing.T) {
	for _, timeout := range []time.Duration{100 * time.Microsecond, 5 * time.Millisecond, time.Second} {
		d := newDeadlines(timeout)
		now := time.Now()
		ctx := d.get(now)
		dl, ok := ctx.Deadline()
		if !ok || dl.Sub(now) < timeout || dl.Sub(now) > timeout+d.slack {
			t.Errorf("timeout %s: deadline in %s; want within [%s, %s]", timeout, dl.Sub(now), timeout, timeout+d.slack)
		}
		if d.get(now) != ctx {
			t.Errorf("timeout %s: a query at the same instant got a new context", timeout)
		}
		later := now.Add(d.slack + time.Microsecond)
		if c2 := d.get(later); c2 == ctx {
			t.Errorf("timeout %s: a query past the slack window shares a context that leaves it less than the timeout", timeout)
		}
	}
}
