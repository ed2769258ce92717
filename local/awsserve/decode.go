package awsserve

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"reflect"
	"strings"
	"time"

	smithytime "github.com/aws/smithy-go/time"
)

var timeType = reflect.TypeFor[time.Time]()

// decodeInput decodes an awsJson request body into v, a pointer to an SDK input structure.
// The SDK input structs carry no JSON tags: a member's wire name is its Go field name up to
// case (secretsmanager's "SecretId", sfn's "stateMachineArn"), so names match without regard
// to case, as encoding/json matches them. Unlike encoding/json, timestamps are epoch seconds
// (or date-time strings), JSON null leaves a member unset, and unknown members are ignored.
// Documents and unions (interface members) are refused: no served operation takes one.
func decodeInput(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return fmt.Errorf("request body is not JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("request body has data after the JSON document")
	}
	if _, ok := doc.(map[string]any); !ok {
		return fmt.Errorf("request body is not a JSON object")
	}
	return assign(reflect.ValueOf(v).Elem(), doc, "")
}

// assign stores the decoded JSON value src in dst; path names the member for errors.
func assign(dst reflect.Value, src any, path string) error {
	if src == nil {
		return nil
	}
	t := dst.Type()
	if t == timeType {
		return assignTime(dst, src, path)
	}
	switch t.Kind() {
	case reflect.Pointer:
		p := reflect.New(t.Elem())
		if err := assign(p.Elem(), src, path); err != nil {
			return err
		}
		dst.Set(p)
		return nil
	case reflect.Struct:
		return assignStruct(dst, src, path)
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return assignBlob(dst, src, path)
		}
		return assignSlice(dst, src, path)
	case reflect.Map:
		return assignMap(dst, src, path)
	default:
		return assignScalar(dst, src, path)
	}
}

// mismatch is the error for a JSON value of the wrong kind for its member.
func mismatch(path, want string, src any) error {
	return fmt.Errorf("member %s: expected %s, got %s", strings.TrimPrefix(path, "."), want, jsonKind(src))
}

// assignStruct fills the fields named by the object's keys; unknown keys are ignored.
func assignStruct(dst reflect.Value, src any, path string) error {
	obj, ok := src.(map[string]any)
	if !ok {
		return mismatch(path, "an object", src)
	}
	for key, val := range obj {
		f, ok := fieldByWireName(dst.Type(), key)
		if !ok {
			continue
		}
		if err := assign(dst.FieldByIndex(f.Index), val, path+"."+key); err != nil {
			return err
		}
	}
	return nil
}

// assignBlob reads a blob member, which the wire carries as base64.
func assignBlob(dst reflect.Value, src any, path string) error {
	s, ok := src.(string)
	if !ok {
		return mismatch(path, "a base64 string", src)
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return fmt.Errorf("member %s: %w", strings.TrimPrefix(path, "."), err)
	}
	dst.SetBytes(b)
	return nil
}

func assignSlice(dst reflect.Value, src any, path string) error {
	arr, ok := src.([]any)
	if !ok {
		return mismatch(path, "an array", src)
	}
	out := reflect.MakeSlice(dst.Type(), len(arr), len(arr))
	for i, val := range arr {
		if err := assign(out.Index(i), val, fmt.Sprintf("%s[%d]", path, i)); err != nil {
			return err
		}
	}
	dst.Set(out)
	return nil
}

func assignMap(dst reflect.Value, src any, path string) error {
	t := dst.Type()
	obj, ok := src.(map[string]any)
	if !ok || t.Key().Kind() != reflect.String {
		return mismatch(path, "an object", src)
	}
	out := reflect.MakeMapWithSize(t, len(obj))
	for key, val := range obj {
		elem := reflect.New(t.Elem()).Elem()
		if err := assign(elem, val, path+"."+key); err != nil {
			return err
		}
		out.SetMapIndex(reflect.ValueOf(key).Convert(t.Key()), elem)
	}
	dst.Set(out)
	return nil
}

// assignScalar reads strings, booleans and numbers; other kinds are not supported.
func assignScalar(dst reflect.Value, src any, path string) error {
	switch dst.Kind() {
	case reflect.String:
		s, ok := src.(string)
		if !ok {
			return mismatch(path, "a string", src)
		}
		dst.SetString(s)
	case reflect.Bool:
		b, ok := src.(bool)
		if !ok {
			return mismatch(path, "a boolean", src)
		}
		dst.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, ok := src.(json.Number)
		if !ok {
			return mismatch(path, "an integer", src)
		}
		i, err := n.Int64()
		if err != nil || dst.OverflowInt(i) {
			return mismatch(path, "an integer in range", src)
		}
		dst.SetInt(i)
	case reflect.Float32, reflect.Float64:
		f, ok := jsonFloat(src)
		if !ok {
			return mismatch(path, "a number", src)
		}
		dst.SetFloat(f)
	default: // interfaces: documents and unions
		return fmt.Errorf("member %s: %s members are not supported", strings.TrimPrefix(path, "."), dst.Type())
	}
	return nil
}

// assignTime reads a timestamp: epoch seconds, the awsJson default, or a date-time string
// for members with that timestampFormat.
func assignTime(dst reflect.Value, src any, path string) error {
	switch v := src.(type) {
	case json.Number:
		f, err := v.Float64()
		if err != nil {
			return fmt.Errorf("member %s: %w", strings.TrimPrefix(path, "."), err)
		}
		dst.Set(reflect.ValueOf(smithytime.ParseEpochSeconds(f)))
	case string:
		t, err := smithytime.ParseDateTime(v)
		if err != nil {
			return fmt.Errorf("member %s: %w", strings.TrimPrefix(path, "."), err)
		}
		dst.Set(reflect.ValueOf(t))
	default:
		return fmt.Errorf("member %s: expected a timestamp, got %s", strings.TrimPrefix(path, "."), jsonKind(src))
	}
	return nil
}

func jsonFloat(src any) (float64, bool) {
	switch v := src.(type) {
	case json.Number:
		f, err := v.Float64()
		return f, err == nil
	case string:
		switch v {
		case "NaN":
			return math.NaN(), true
		case "Infinity":
			return math.Inf(1), true
		case "-Infinity":
			return math.Inf(-1), true
		}
	}
	return 0, false
}

// fieldByWireName finds the exported field of struct type t for a JSON member name.
func fieldByWireName(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		if f.IsExported() && strings.EqualFold(f.Name, name) {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func jsonKind(v any) string {
	switch v.(type) {
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	}
	return fmt.Sprintf("%T", v)
}
