package apirec

import (
	"errors"
	"slices"
	"testing"
)

type call struct {
	op   string
	tags []string
}

func newRecorder() *Recorder[call] {
	return New(func(c call) string { return c.op },
		func(c call) call { c.tags = slices.Clone(c.tags); return c })
}

func TestCallsAreCopiesInOrder(t *testing.T) {
	r := newRecorder()
	r.Record(call{op: "A", tags: []string{"x"}})
	r.Record(call{op: "B"})
	r.Record(call{op: "A", tags: []string{"y"}})

	got := r.Calls()
	if len(got) != 3 || got[0].op != "A" || got[1].op != "B" || got[2].op != "A" {
		t.Fatalf("Calls() = %+v, want A, B, A", got)
	}
	got[0].tags[0] = "changed"
	if r.Calls()[0].tags[0] != "x" {
		t.Fatal("Calls() shares a slice with the record")
	}
	as := r.CallsOf("A")
	if len(as) != 2 || as[0].tags[0] != "x" || as[1].tags[0] != "y" {
		t.Fatalf("CallsOf(A) = %+v, want the two A calls in order", as)
	}
	if n := len(r.CallsOf("C")); n != 0 {
		t.Fatalf("CallsOf(C) has %d calls, want none", n)
	}
}

func TestInterceptorsRunOncePerCallInOrder(t *testing.T) {
	r := newRecorder()
	first, second := errors.New("first"), errors.New("second")
	r.Intercept("A", func() error { return first })
	r.Intercept("A", func() error { return second })

	for i, want := range []error{first, second, nil} {
		if err := r.Begin("A"); !errors.Is(err, want) || (want == nil && err != nil) {
			t.Fatalf("Begin(A) #%d = %v, want %v", i+1, err, want)
		}
	}
	if err := r.Begin("B"); err != nil {
		t.Fatalf("Begin(B) = %v, want nil: no interceptor for B", err)
	}
}

func TestInterceptorMayUseTheRecorder(t *testing.T) {
	r := newRecorder()
	r.Intercept("A", func() error { r.Record(call{op: "inner"}); return nil })
	if err := r.Begin("A"); err != nil {
		t.Fatal(err)
	}
	if got := r.CallsOf("inner"); len(got) != 1 {
		t.Fatalf("the interceptor's call was not recorded: %+v", r.Calls())
	}
}
