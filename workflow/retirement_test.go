package workflow

import (
	"errors"
	"testing"
	"time"
)

func TestRetirementGrace(t *testing.T) {
	tests := []struct {
		name string
		r    *Retirement
		want time.Duration // 0: an *InvalidSecret
	}{
		{"hour", &Retirement{After: "1h0m0s"}, time.Hour},
		{"second", &Retirement{After: "1s"}, time.Second},
		{"off", &Retirement{After: RetireOff}, 0},
		{"zero", &Retirement{After: "0s"}, 0},
		{"negative", &Retirement{After: "-5m"}, 0},
		{"empty", &Retirement{}, 0},
		{"missing", nil, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.r.Grace()
			if tc.want != 0 {
				if err != nil || got != tc.want {
					t.Fatalf("Grace() = %v, %v; want %v", got, err, tc.want)
				}
				return
			}
			var inv *InvalidSecret
			if !errors.As(err, &inv) || inv.Secret != "state" {
				t.Fatalf("Grace() = %v, %v; want an *InvalidSecret about the state", got, err)
			}
		})
	}
}

func TestRetirePreviousIsTopLevelNotMainPath(t *testing.T) {
	if !IsTopLevel(StateRetirePrevious) {
		t.Error("RetirePrevious must show in timelines")
	}
	for _, s := range MainPath {
		if s == StateRetirePrevious {
			t.Error("RetirePrevious must not be on MainPath: with retirement off the execution never enters it")
		}
	}
}
