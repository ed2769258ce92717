package awsserve

import (
	"encoding/base64"
	"encoding/json"
	"math"
	"math/big"
	"strconv"
	"time"

	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/document"
	smithytime "github.com/aws/smithy-go/time"
	"github.com/aws/smithy-go/traits"
)

// jsonWriter is a smithy.ShapeSerializer that writes the JSON documents of the awsJson
// protocols: an object per structure keyed by member name, epoch-seconds numbers for
// timestamps unless the member's timestampFormat trait says otherwise, base64 for blobs,
// and "NaN"/"Infinity"/"-Infinity" strings for those floats
// (https://smithy.io/2.0/aws/protocols/aws-json-1_1-protocol.html#shape-serialization).
// The SDK's generated Serialize methods drive it, so they decide which members are present.
type jsonWriter struct {
	buf    []byte
	frames []frame
	keyed  bool // a map key (or union variant key) was just written: the value needs none
	err    error
}

// frame is one open object or array.
type frame struct {
	object bool // members are keyed
	n      int  // values written so far
}

var _ smithy.ShapeSerializer = (*jsonWriter)(nil)

// encodeShape serializes v (an SDK output structure) to its awsJson document.
func encodeShape(v smithy.Serializable) ([]byte, error) {
	w := &jsonWriter{}
	v.Serialize(w)
	if w.err != nil {
		return nil, w.err
	}
	return w.buf, nil
}

func (w *jsonWriter) Bytes() []byte { return w.buf }

// prefix writes what precedes a value: a comma after a sibling, and the member's name
// inside a structure.
func (w *jsonWriter) prefix(schema *smithy.Schema) {
	if w.keyed {
		w.keyed = false
		return
	}
	if len(w.frames) == 0 {
		return
	}
	f := &w.frames[len(w.frames)-1]
	if f.n > 0 {
		w.buf = append(w.buf, ',')
	}
	f.n++
	if f.object && schema != nil {
		w.buf = appendJSONString(w.buf, schema.MemberName())
		w.buf = append(w.buf, ':')
	}
}

// key writes a structure member's name; the value written next takes no prefix.
func (w *jsonWriter) key(name string) {
	w.prefix(nil)
	w.buf = appendJSONString(w.buf, name)
	w.buf = append(w.buf, ':')
	w.keyed = true
}

func (w *jsonWriter) open(schema *smithy.Schema, c byte, object bool) {
	w.prefix(schema)
	w.buf = append(w.buf, c)
	w.frames = append(w.frames, frame{object: object})
}

func (w *jsonWriter) close(c byte) {
	w.buf = append(w.buf, c)
	w.frames = w.frames[:len(w.frames)-1]
}

func (w *jsonWriter) raw(schema *smithy.Schema, p []byte) {
	w.prefix(schema)
	w.buf = append(w.buf, p...)
}

func (w *jsonWriter) WriteInt8(s *smithy.Schema, v int8)   { w.WriteInt64(s, int64(v)) }
func (w *jsonWriter) WriteInt16(s *smithy.Schema, v int16) { w.WriteInt64(s, int64(v)) }
func (w *jsonWriter) WriteInt32(s *smithy.Schema, v int32) { w.WriteInt64(s, int64(v)) }
func (w *jsonWriter) WriteInt64(s *smithy.Schema, v int64) {
	w.raw(s, strconv.AppendInt(nil, v, 10))
}
func (w *jsonWriter) WriteFloat32(s *smithy.Schema, v float32) { w.writeFloat(s, float64(v), 32) }
func (w *jsonWriter) WriteFloat64(s *smithy.Schema, v float64) { w.writeFloat(s, v, 64) }

func (w *jsonWriter) writeFloat(s *smithy.Schema, v float64, bits int) {
	switch {
	case math.IsNaN(v):
		w.WriteString(s, "NaN")
	case math.IsInf(v, 1):
		w.WriteString(s, "Infinity")
	case math.IsInf(v, -1):
		w.WriteString(s, "-Infinity")
	default:
		w.raw(s, strconv.AppendFloat(nil, v, 'f', -1, bits))
	}
}

func (w *jsonWriter) WriteBool(s *smithy.Schema, v bool) { w.raw(s, strconv.AppendBool(nil, v)) }

func (w *jsonWriter) WriteString(s *smithy.Schema, v string) {
	w.prefix(s)
	w.buf = appendJSONString(w.buf, v)
}

// appendJSONString appends v as a JSON string (encoding/json's escaping; a string cannot
// fail to marshal).
func appendJSONString(buf []byte, v string) []byte {
	p, _ := json.Marshal(v)
	return append(buf, p...)
}

func (w *jsonWriter) WriteBigInt(s *smithy.Schema, v *big.Int) { w.raw(s, []byte(v.String())) }
func (w *jsonWriter) WriteBigFloat(s *smithy.Schema, v *big.Float) {
	w.raw(s, []byte(v.Text('g', -1)))
}

func (w *jsonWriter) WriteBlob(s *smithy.Schema, v []byte) {
	w.WriteString(s, base64.StdEncoding.EncodeToString(v))
}

func (w *jsonWriter) WriteTime(s *smithy.Schema, v time.Time) {
	format := "epoch-seconds"
	if t, ok := smithy.SchemaTrait[*traits.TimestampFormat](s); ok {
		format = t.Format
	}
	switch format {
	case "date-time":
		w.WriteString(s, smithytime.FormatDateTime(v))
	case "http-date":
		w.WriteString(s, smithytime.FormatHTTPDate(v))
	default:
		w.WriteFloat64(s, smithytime.FormatEpochSeconds(v))
	}
}

// WriteUnion opens the union's object and writes the variant's key; the variant's value
// follows without a key of its own.
func (w *jsonWriter) WriteUnion(schema, variant *smithy.Schema) {
	w.open(schema, '{', true)
	w.prefix(variant)
	w.keyed = true
}

func (w *jsonWriter) CloseUnion() { w.close('}') }

func (w *jsonWriter) WriteDocument(s *smithy.Schema, v document.Value) {
	// Document members do not occur in the operations the local models serve.
	w.fail(&smithy.SerializationError{Err: errUnsupported("document")})
	w.WriteNil(s)
}

func (w *jsonWriter) WriteNil(s *smithy.Schema) { w.raw(s, []byte("null")) }

func (w *jsonWriter) WriteStruct(s *smithy.Schema) { w.open(s, '{', true) }
func (w *jsonWriter) CloseStruct()                 { w.close('}') }
func (w *jsonWriter) WriteList(s *smithy.Schema)   { w.open(s, '[', false) }
func (w *jsonWriter) CloseList()                   { w.close(']') }
func (w *jsonWriter) WriteMap(s *smithy.Schema)    { w.open(s, '{', false) }
func (w *jsonWriter) CloseMap()                    { w.close('}') }

// WriteKey writes a map key; the value written next takes no key.
func (w *jsonWriter) WriteKey(_ *smithy.Schema, key string) { w.key(key) }

func (w *jsonWriter) fail(err error) {
	if w.err == nil {
		w.err = err
	}
}

type errUnsupported string

func (e errUnsupported) Error() string { return "awsserve: unsupported shape: " + string(e) }
