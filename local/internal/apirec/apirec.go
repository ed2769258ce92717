// Package apirec is what the local AWS models (local/secrets, local/ecs) share to stand in
// for an API in tests: a record of the calls made, oldest first, and per-operation
// interceptors that run before the next call of an operation (to fail it, or to act as a
// concurrent writer).
package apirec

import "sync"

// Recorder records calls of type C and queues interceptors. The zero value is not usable:
// call New.
type Recorder[C any] struct {
	op    func(C) string // the call's operation name
	clone func(C) C      // a copy that shares no slice with the record

	mu        sync.Mutex
	calls     []C
	intercept map[string][]func() error
}

// New returns a Recorder that reads a call's operation with op and copies calls with clone.
func New[C any](op func(C) string, clone func(C) C) *Recorder[C] {
	return &Recorder[C]{op: op, clone: clone, intercept: map[string][]func() error{}}
}

// Record appends c to the record.
func (r *Recorder[C]) Record(c C) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, c)
}

// Calls returns copies of the calls made so far, oldest first.
func (r *Recorder[C]) Calls() []C {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]C, len(r.calls))
	for i, c := range r.calls {
		out[i] = r.clone(c)
	}
	return out
}

// CallsOf returns the recorded calls of one operation, oldest first.
func (r *Recorder[C]) CallsOf(op string) []C {
	var out []C
	for _, c := range r.Calls() {
		if r.op(c) == op {
			out = append(out, c)
		}
	}
	return out
}

// Intercept queues fn to run once, before the next call of op. Interceptors for one
// operation run in the order they were added, one per call.
func (r *Recorder[C]) Intercept(op string, fn func() error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.intercept[op] = append(r.intercept[op], fn)
}

// Begin runs the pending interceptor of op, if any, without the lock held (so it may use
// the model), and returns its error.
func (r *Recorder[C]) Begin(op string) error {
	r.mu.Lock()
	var fn func() error
	if q := r.intercept[op]; len(q) > 0 {
		fn = q[0]
		r.intercept[op] = q[1:]
	}
	r.mu.Unlock()
	if fn == nil {
		return nil
	}
	return fn()
}
