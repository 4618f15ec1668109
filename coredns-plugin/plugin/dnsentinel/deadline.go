package dnsentinel

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// deadlines hands out contexts that expire between timeout and timeout+slack from now,
// shared by all queries that start within the same slack window. A context.WithTimeout per
// query costs a timer and several allocations, which was a third of the plugin's CPU on
// the cache-hit path, where rueidis answers without looking at the context at all.
type deadlines struct {
	timeout, slack time.Duration
	cur            atomic.Pointer[sharedDeadline]
	mu             sync.Mutex
}

type sharedDeadline struct {
	ctx      context.Context
	deadline time.Time
}

func newDeadlines(timeout time.Duration) *deadlines {
	return &deadlines{timeout: timeout, slack: min(time.Millisecond, max(timeout/4, 50*time.Microsecond))}
}

// get returns a context whose deadline is at least timeout and at most timeout+slack away.
func (d *deadlines) get(now time.Time) context.Context {
	if s := d.cur.Load(); s != nil && s.deadline.Sub(now) >= d.timeout {
		return s.ctx
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if s := d.cur.Load(); s != nil && s.deadline.Sub(now) >= d.timeout {
		return s.ctx
	}
	dl := now.Add(d.timeout + d.slack)
	ctx, cancel := context.WithDeadline(context.Background(), dl)
	time.AfterFunc(d.timeout+2*d.slack, cancel) // the deadline timer frees it anyway; be explicit
	d.cur.Store(&sharedDeadline{ctx: ctx, deadline: dl})
	return ctx
}
