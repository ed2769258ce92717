package awsserve

import (
	"encoding/base64"
	"fmt"
	"reflect"
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithytime "github.com/aws/smithy-go/time"
)

// metadataType is ResultMetadata's type, which every output has and none sends.
var metadataType = reflect.TypeFor[middleware.Metadata]()

// encodeOutput writes an SDK output structure as its awsJson document: with the SDK's own
// Serialize method where the client has one (the schema-serde clients: secretsmanager,
// ecs), else reflectively with name mapping Go field names to member names.
func encodeOutput(v any, name func(string) string) ([]byte, error) {
	if s, ok := v.(smithy.Serializable); ok {
		return encodeShape(s)
	}
	if name == nil {
		return nil, fmt.Errorf("awsserve: %T has no Serialize method and no member naming", v)
	}
	w := &jsonWriter{}
	if err := encodeValue(w, reflect.ValueOf(v), name); err != nil {
		return nil, err
	}
	return w.buf, nil
}

// lowerFirst maps a Go field name to a camelCase member name ("ExecutionArn" →
// "executionArn"), the naming of the Step Functions model.
func lowerFirst(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	return string(unicode.ToLower(r)) + s[n:]
}

// encodeValue writes v as the awsJson protocols do, following the rules of the SDK's
// generated serializers: nil pointers, slices and maps and empty enum strings are absent,
// timestamps are epoch seconds, blobs base64. Unions and documents are refused.
func encodeValue(w *jsonWriter, v reflect.Value, name func(string) string) error {
	t := v.Type()
	if t == timeType {
		w.WriteFloat64(nil, smithytime.FormatEpochSeconds(v.Interface().(time.Time)))
		return nil
	}
	switch t.Kind() {
	case reflect.Pointer:
		return encodeValue(w, v.Elem(), name)
	case reflect.Struct:
		return encodeStruct(w, v, name)
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			w.WriteString(nil, base64.StdEncoding.EncodeToString(v.Bytes()))
			return nil
		}
		return encodeList(w, v, name)
	case reflect.Map:
		return encodeMap(w, v, name)
	default:
		return encodeScalar(w, v)
	}
}

// encodeStruct writes the exported members that are not omitted, under their wire names.
func encodeStruct(w *jsonWriter, v reflect.Value, name func(string) string) error {
	t := v.Type()
	w.WriteStruct(nil)
	for i := range t.NumField() {
		f, fv := t.Field(i), v.Field(i)
		if !f.IsExported() || f.Type == metadataType || omitted(fv) {
			continue
		}
		w.key(name(f.Name))
		if err := encodeValue(w, fv, name); err != nil {
			return err
		}
	}
	w.CloseStruct()
	return nil
}

func encodeList(w *jsonWriter, v reflect.Value, name func(string) string) error {
	w.WriteList(nil)
	for i := range v.Len() {
		if err := encodeValue(w, v.Index(i), name); err != nil {
			return err
		}
	}
	w.CloseList()
	return nil
}

func encodeMap(w *jsonWriter, v reflect.Value, name func(string) string) error {
	w.WriteMap(nil)
	iter := v.MapRange()
	for iter.Next() {
		w.WriteKey(nil, iter.Key().String())
		if err := encodeValue(w, iter.Value(), name); err != nil {
			return err
		}
	}
	w.CloseMap()
	return nil
}

// encodeScalar writes strings, booleans and numbers; unions and documents are refused.
func encodeScalar(w *jsonWriter, v reflect.Value) error {
	switch v.Kind() {
	case reflect.String:
		w.WriteString(nil, v.String())
	case reflect.Bool:
		w.WriteBool(nil, v.Bool())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		w.raw(nil, strconv.AppendInt(nil, v.Int(), 10))
	case reflect.Float32, reflect.Float64:
		w.writeFloat(nil, v.Float(), v.Type().Bits())
	default:
		return fmt.Errorf("awsserve: cannot encode %s", v.Type())
	}
	return nil
}

// omitted reports whether a member is left out: nil pointers, slices, maps and interfaces,
// and empty enum strings (the SDK's serializers skip an enum member whose value is "").
func omitted(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Map, reflect.Interface:
		return v.IsNil()
	case reflect.String:
		return v.Len() == 0
	}
	return false
}
