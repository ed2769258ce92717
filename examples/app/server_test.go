package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestServe checks the drain without a database: an in-flight request finishes after the
// signal, and one that outlives the drain timeout makes serve fail.
func TestServe(t *testing.T) {
	tests := []struct {
		name    string
		hold    time.Duration // how long the in-flight request runs after the signal
		drain   time.Duration
		wantErr string
	}{
		{name: "drains in-flight request", hold: 200 * time.Millisecond, drain: 10 * time.Second},
		{name: "drain timeout", hold: 10 * time.Second, drain: 100 * time.Millisecond, wantErr: "drain in-flight requests"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			started, release := make(chan struct{}), make(chan struct{})
			t.Cleanup(func() { close(release) })
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				close(started)
				select {
				case <-release:
				case <-time.After(tt.hold):
				}
				_, _ = io.WriteString(w, "done")
			})
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			ctx, signal := context.WithCancel(context.Background())
			defer signal()
			var stdout bytes.Buffer
			served := make(chan error, 1)
			go func() { served <- serve(ctx, ln, h, tt.drain, &stdout, slog.New(slog.DiscardHandler)) }()

			type result struct {
				body string
				err  error
			}
			got := make(chan result, 1)
			go func() {
				resp, err := http.Get("http://" + ln.Addr().String())
				if err != nil {
					got <- result{err: err}
					return
				}
				defer resp.Body.Close()
				b, err := io.ReadAll(resp.Body)
				got <- result{string(b), err}
			}()
			<-started
			signal()
			err = <-served
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("serve = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("serve: %v", err)
			}
			if r := <-got; r.err != nil || r.body != "done" {
				t.Errorf("in-flight request = %q, %v; want done", r.body, r.err)
			}
			if want := "READY " + ln.Addr().String() + "\n"; stdout.String() != want {
				t.Errorf("stdout = %q, want %q", stdout.String(), want)
			}
		})
	}
}
