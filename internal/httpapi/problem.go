package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/fabgate/fabgate/internal/fablab"
	"github.com/fabgate/fabgate/internal/i18n"
)

// statusOf maps error codes to HTTP statuses: the one table of the API.
// Codes not listed are booking or domain rules: 422.
var statusOf = map[string]int{
	fablab.EINVALID:            http.StatusBadRequest,
	fablab.ENOTFOUND:           http.StatusNotFound,
	fablab.ECONFLICT:           http.StatusConflict,
	fablab.EUNAUTHORIZED:       http.StatusUnauthorized,
	fablab.EFORBIDDEN:          http.StatusForbidden,
	fablab.ETOOMANY:            http.StatusTooManyRequests,
	fablab.EINTERNAL:           http.StatusInternalServerError,
	fablab.CodeBookingConflict: http.StatusConflict,
	"email_taken":              http.StatusConflict,
	"badge_taken":              http.StatusConflict,
	"payload_too_large":        http.StatusRequestEntityTooLarge,
	"unsupported_media_type":   http.StatusUnsupportedMediaType,
	"method_not_allowed":       http.StatusMethodNotAllowed,
	codeBusy:                   http.StatusServiceUnavailable,
	// The disk is full: not the client's fault, and not a bug; nothing was
	// written, and the same request succeeds once the operator frees space.
	// 507 (RFC 4918: the server "is unable to store the representation
	// needed to complete the request") says exactly that; 503 would invite
	// clients to retry on their own, which does not help.
	fablab.ESTORAGEFULL: http.StatusInsufficientStorage,
}

// Problem is an RFC 9457 problem document with FabGate's stable code.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Code   string `json:"code"`
	// Field is the JSON name of the request field at fault, when there is one.
	Field string `json:"field,omitempty"`
}

// fail writes err as application/problem+json and aborts the request.
// Internal errors are logged here, once, and shown as "internal error".
func (s *Server) fail(c *gin.Context, err error) {
	code := fablab.ErrorCode(err)
	status, ok := statusOf[code]
	if !ok {
		status = http.StatusUnprocessableEntity
	}
	switch status {
	case http.StatusInternalServerError:
		s.log.Error("request failed", "method", c.Request.Method, "path", c.FullPath(), "err", err)
	case http.StatusInsufficientStorage:
		s.log.Error("request refused: the disk is full; free space on the data directory's disk", "method", c.Request.Method, "path", c.FullPath(), "err", err)
	}
	p := Problem{
		Type:   "about:blank",
		Title:  http.StatusText(status),
		Status: status,
		Detail: problemDetail(c, err),
		Code:   code,
		Field:  fablab.ErrorField(err),
	}
	body, _ := json.Marshal(p)
	c.Abort()
	c.Data(status, "application/problem+json", body)
}

// maxBody limits request bodies.
const maxBody = 1 << 20

// decode reads exactly one JSON object from the request body into v,
// rejecting unknown fields and trailing data, with messages that say what to
// fix. It never partially applies anything: v is a fresh request struct.
func decode(c *gin.Context, v any) error {
	if ct := c.GetHeader("Content-Type"); ct != "" {
		// Media types are case-insensitive and may carry parameters (charset).
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			return fablab.Errorf("unsupported_media_type", "send the body as application/json")
		}
	}
	var body bytes.Buffer
	r := io.TeeReader(http.MaxBytesReader(c.Writer, c.Request.Body, maxBody), &body)
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) { // an object followed by padding past the limit
			return jsonError(err)
		}
		return fablab.Errorf(fablab.EINVALID, "the body must hold exactly one JSON object")
	}
	if err := checkDuplicateKeys(body.Bytes()); err != nil {
		return err
	}
	return checkFieldCase(body.Bytes(), reflect.TypeOf(v))
}

// checkDuplicateKeys refuses an object, at any depth, that names a key
// twice: encoding/json keeps the last one silently, so that a proxy or a
// log reading the first would see another request than the server does.
// data is one JSON value that has already decoded.
func checkDuplicateKeys(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	return walkDuplicateKeys(dec, "")
}

func walkDuplicateKeys(dec *json.Decoder, path string) error {
	tok, err := dec.Token()
	if err != nil {
		return jsonError(err)
	}
	switch tok {
	case json.Delim('{'):
		seen := map[string]bool{}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return jsonError(err)
			}
			k, _ := kt.(string)
			if seen[k] {
				return fablab.Errorf(fablab.EINVALID, "field %q is given twice; give each field once", path+k)
			}
			seen[k] = true
			if err := walkDuplicateKeys(dec, path+k+"."); err != nil {
				return err
			}
		}
	case json.Delim('['):
		for dec.More() {
			if err := walkDuplicateKeys(dec, path); err != nil {
				return err
			}
		}
	default:
		return nil
	}
	if _, err := dec.Token(); err != nil { // the closing delimiter
		return jsonError(err)
	}
	return nil
}

// checkFieldCase refuses object keys that name a field only when case is
// ignored ("Machine_ID" for machine_id), which encoding/json accepts: the API
// takes its field names exactly as documented. data has already decoded into
// a value of type t.
func checkFieldCase(data []byte, t reflect.Type) error {
	var doc any
	if err := json.Unmarshal(data, &doc); err != nil {
		return jsonError(err)
	}
	return walkFieldCase(doc, t, "")
}

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

func walkFieldCase(doc any, t reflect.Type, path string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		return nil // decodes itself (and checks itself where it holds objects)
	}
	switch d := doc.(type) {
	case map[string]any:
		switch t.Kind() {
		case reflect.Map:
			for k, v := range d {
				if err := walkFieldCase(v, t.Elem(), path+k+"."); err != nil {
					return err
				}
			}
		case reflect.Struct:
			fields := jsonFieldTypes(t)
			for k, v := range d {
				if ft, ok := fields[k]; ok {
					if err := walkFieldCase(v, ft, path+k+"."); err != nil {
						return err
					}
					continue
				}
				for name := range fields {
					if strings.EqualFold(name, k) {
						return fablab.Errorf(fablab.EINVALID, "field %q is not accepted here; write it %q", path+k, path+name)
					}
				}
			}
		}
	case []any:
		if t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
			for _, v := range d {
				if err := walkFieldCase(v, t.Elem(), path); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// jsonFieldTypes maps the JSON names of t's fields (embedded structs included)
// to their types.
func jsonFieldTypes(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() && !f.Anonymous {
			continue
		}
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			for k, v := range jsonFieldTypes(f.Type) {
				out[k] = v
			}
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}

func jsonError(err error) error {
	var (
		syn *json.SyntaxError
		typ *json.UnmarshalTypeError
		tpe *time.ParseError
		fe  *fablab.Error
		mbe *http.MaxBytesError
	)
	switch {
	case errors.Is(err, io.EOF):
		return fablab.Errorf(fablab.EINVALID, "the body is empty; send a JSON object")
	case errors.As(err, &mbe):
		return fablab.Errorf("payload_too_large", "the body is larger than %d bytes", maxBody)
	case errors.As(err, &syn):
		return fablab.Errorf(fablab.EINVALID, "malformed JSON at byte %d: %s", syn.Offset, syn.Error())
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fablab.Errorf(fablab.EINVALID, "malformed JSON: the body ends too early")
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			return fablab.Errorf(fablab.EINVALID, "the body must be a JSON object, not %s", typ.Value)
		}
		return fablab.Errorf(fablab.EINVALID, "field %q must be %s, not %s", field, jsonKind(typ.Type.String()), typ.Value)
	case errors.As(err, &tpe):
		return fablab.Errorf(fablab.EINVALID, "times must be RFC 3339, such as 2026-03-02T09:00:00+01:00 (got %s)", tpe.Value)
	case errors.As(err, &fe):
		return fe
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return fablab.Errorf(fablab.EINVALID, "%s is not accepted here; remove it", strings.TrimPrefix(err.Error(), "json: "))
	}
	return fablab.Errorf(fablab.EINVALID, "invalid JSON body: %s", err.Error())
}

func jsonKind(goType string) string {
	switch {
	case strings.Contains(goType, "int"), strings.Contains(goType, "float"):
		return "a number"
	case goType == "bool":
		return "true or false"
	case strings.HasPrefix(goType, "[]"):
		return "an array"
	case strings.HasPrefix(goType, "map"), strings.Contains(goType, "struct"):
		return "an object"
	case strings.Contains(goType, "Time"):
		return "an RFC 3339 time"
	}
	return "a string"
}

// queryTime parses an optional RFC 3339 query parameter.
func queryTime(c *gin.Context, name string, def time.Time) (time.Time, error) {
	v := c.Query(name)
	if v == "" {
		return def, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return t, fablab.Errorf(fablab.EINVALID, "query %s must be an RFC 3339 time such as 2026-03-02T09:00:00+01:00 (in a URL, write + as %%2B)", name).
			On(name).Say("problem_query_time", "Got", fablab.Truncate(v, 40))
	}
	return t, onField(checkInstant("query "+name, t), name)
}

// onField names field as the request field err is about, when err is a
// refusal (*fablab.Error); other errors pass as they are.
func onField(err error, field string) error {
	var fe *fablab.Error
	if errors.As(err, &fe) {
		return fe.On(field)
	}
	return err
}

// The instants the API accepts. JSON and RFC 3339 have four-digit years, and
// a day of margin keeps the year in range in every time zone (the lab's
// included), so that whatever is accepted can be stored and shown again.
var (
	minInstant = time.Date(1, 1, 2, 0, 0, 0, 0, time.UTC)
	maxInstant = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)
)

// checkInstant rejects instants outside [minInstant, maxInstant].
func checkInstant(name string, t time.Time) error {
	if t.Before(minInstant) || t.After(maxInstant) {
		return fablab.Errorf(fablab.EINVALID, "%s must lie between the years 0001 and 9999", name).On(name).Say("problem_instant_range")
	}
	return nil
}

// maxRange bounds the time range of list and availability queries.
const maxRange = 366 * 24 * time.Hour

// queryRange reads ?from=&to= with defaults and checks them.
func queryRange(c *gin.Context, defFrom time.Time, defLen time.Duration) (from, to time.Time, err error) {
	if from, err = queryTime(c, "from", defFrom); err != nil {
		return
	}
	if to, err = queryTime(c, "to", from.Add(defLen)); err != nil {
		return
	}
	if err = checkInstant("to", to); err != nil { // the default may land out of range too
		return
	}
	if !to.After(from) {
		err = fablab.Errorf(fablab.EINVALID, "to must be after from").On("to").Say("problem_range_order")
	} else if to.Sub(from) > maxRange {
		err = fablab.Errorf(fablab.EINVALID, "the range from %s to %s is longer than a year; ask for less", from.Format(time.DateOnly), to.Format(time.DateOnly)).
			On("to").Say("problem_range_too_long", "From", fablab.DateOf(from), "To", fablab.DateOf(to))
	}
	return
}

// pathID parses the :name path parameter as an id.
func pathID(c *gin.Context, name string) (fablab.ID, error) {
	id, err := fablab.ParseID(c.Param(name))
	if err != nil {
		return 0, fablab.Errorf(fablab.ENOTFOUND, "nothing has id %q: ids are positive decimal numbers such as 42", c.Param(name))
	}
	return id, nil
}

// partial is an object field of a PATCH-like body that updates only the
// members it names: decoding into an existing value leaves absent fields as
// they are. It is checked strictly against T when the request arrives, so
// unknown fields and wrong types answer 400 before anything is touched.
type partial[T any] struct {
	raw json.RawMessage
}

// UnmarshalJSON checks the object against T and keeps it for mergeInto.
func (p *partial[T]) UnmarshalJSON(b []byte) error {
	var probe T
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&probe); err != nil {
		return err
	}
	if err := checkFieldCase(b, reflect.TypeOf(probe)); err != nil {
		return err
	}
	if string(bytes.TrimSpace(b)) != "null" {
		p.raw = append(json.RawMessage(nil), b...)
	}
	return nil
}

// mergeInto overwrites the fields of dst that the request named.
func (p *partial[T]) mergeInto(dst *T) {
	if p.raw != nil {
		_ = json.Unmarshal(p.raw, dst) // cannot fail: checked against T in UnmarshalJSON
	}
}

func queryID(c *gin.Context, name string) (fablab.ID, error) {
	v := c.Query(name)
	if v == "" {
		return 0, nil
	}
	id, err := fablab.ParseID(v)
	if err != nil {
		return 0, fablab.Errorf(fablab.EINVALID, "query %s: %s", name, fablab.ErrorMessage(err)).On(name)
	}
	return id, nil
}

func queryInt(c *gin.Context, name string, def, min, max int) (int, error) {
	v := c.Query(name)
	if v == "" {
		return def, nil
	}
	var n int
	if _, err := fmt.Sscanf(v, "%d", &n); err != nil || fmt.Sprint(n) != v || n < min || n > max {
		return 0, fablab.Errorf(fablab.EINVALID, "query %s must be a whole number from %d to %d", name, min, max).On(name)
	}
	return n, nil
}

// problemDetail is err's message in the language the client reads: the
// English message, or its translation when the client asks for French
// (the pages' language switch, or Accept-Language) and there is one.
func problemDetail(c *gin.Context, err error) string {
	return problemDetailIn(chosenLang(c), err)
}

// problemDetailIn is err's message in language l ("" for English).
func problemDetailIn(l string, err error) string {
	msg := fablab.ErrorMessage(err)
	key, args := fablab.ErrorKey(err)
	if key == "" {
		return msg
	}
	if l == "" || l == "en" {
		return msg
	}
	vs, verr := pageViews()
	if verr != nil || !vs.cat.Has(l, key) {
		return msg
	}
	shown := make([]any, len(args))
	for i, a := range args {
		switch v := a.(type) {
		case time.Time:
			shown[i] = i18n.FormatDateTime(l, v, v.Location())
		case fablab.Date:
			shown[i] = i18n.FormatDate(l, v.In(time.UTC), time.UTC)
		case fablab.Period:
			shown[i] = periodName(vs.cat, l, v)
		case fablab.Money:
			shown[i] = i18n.FormatMoney(l, v.Cents, v.Currency)
		case fablab.VATRate:
			shown[i] = vatPercentIn(l, int(v))
		default:
			shown[i] = a
		}
	}
	return vs.cat.T(l, key, shown...)
}
