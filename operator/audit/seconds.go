package audit

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Seconds is a duration written in JSON as a number of seconds, exactly (up to nine
// decimals), so a report round-trips: 7776000 for 90 days, 1.5 for 1500 ms.
type Seconds time.Duration

// MarshalJSON writes the seconds as a decimal number.
func (s Seconds) MarshalJSON() ([]byte, error) {
	d := int64(s)
	sign := ""
	if d < 0 {
		sign, d = "-", -d
	}
	whole, frac := d/int64(time.Second), d%int64(time.Second)
	if frac == 0 {
		return fmt.Appendf(nil, "%s%d", sign, whole), nil
	}
	return []byte(strings.TrimRight(fmt.Sprintf("%s%d.%09d", sign, whole, frac), "0")), nil
}

// UnmarshalJSON reads a decimal number of seconds (nine decimals at most).
func (s *Seconds) UnmarshalJSON(b []byte) error {
	text := string(bytes.TrimSpace(b))
	neg := strings.HasPrefix(text, "-")
	whole, frac, _ := strings.Cut(strings.TrimPrefix(text, "-"), ".")
	if len(frac) > 9 {
		return fmt.Errorf("seconds %q: more than nine decimals", text)
	}
	w, err := strconv.ParseInt(whole, 10, 64)
	if err != nil {
		return fmt.Errorf("seconds %q: not a decimal number", text)
	}
	var f int64
	if frac != "" {
		if f, err = strconv.ParseInt(frac+strings.Repeat("0", 9-len(frac)), 10, 64); err != nil {
			return fmt.Errorf("seconds %q: not a decimal number", text)
		}
	}
	d := w*int64(time.Second) + f
	if neg {
		d = -d
	}
	*s = Seconds(d)
	return nil
}

// String is the duration for people, in its two largest units: "90d", "12d 3h", "4m 5s", "1.5s", "850ms".
func (s Seconds) String() string {
	d := time.Duration(s)
	if d < 0 {
		return "-" + Seconds(-d).String()
	}
	day := 24 * time.Hour
	for _, u := range []struct {
		unit, sub     time.Duration
		name, subName string
	}{{day, time.Hour, "d", "h"}, {time.Hour, time.Minute, "h", "m"}, {time.Minute, time.Second, "m", "s"}} {
		if d >= u.unit {
			if rest := d % u.unit / u.sub; rest > 0 {
				return fmt.Sprintf("%d%s %d%s", d/u.unit, u.name, rest, u.subName)
			}
			return fmt.Sprintf("%d%s", d/u.unit, u.name)
		}
	}
	if d >= time.Second {
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
	return fmt.Sprintf("%dms", d/time.Millisecond)
}
