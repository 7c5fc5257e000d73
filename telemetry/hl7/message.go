package hl7

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/simplifiedchinese"
)

// Message is a parsed HL7 v2 message: its segments with fields split on the message's
// own encoding characters and escape sequences resolved.
type Message struct {
	Segments []Segment
	enc      encoding
}

// Segment is one segment; Fields[0] is its name ("MSH", "OBX"). For MSH, Fields[1] is the
// field separator itself, so MSH-n is Fields[n] as for every other segment.
type Segment struct {
	Fields []Field
}

// Field is one field with its repetitions, each a list of components.
type Field struct {
	Reps [][]string
}

type encoding struct {
	field, comp, rep, esc, sub byte
}

// Errors of Parse.
var (
	ErrNoMSH = errors.New("hl7: message does not start with MSH")
)

// Name returns the segment name.
func (s Segment) Name() string { return s.Get(0, 0) }

// Field returns field n (empty when absent).
func (s Segment) Field(n int) Field {
	if n < 0 || n >= len(s.Fields) {
		return Field{}
	}
	return s.Fields[n]
}

// Get returns component c (0-based) of the first repetition of field n.
func (s Segment) Get(n, c int) string {
	f := s.Field(n)
	if len(f.Reps) == 0 || c >= len(f.Reps[0]) {
		return ""
	}
	return f.Reps[0][c]
}

// Value returns the first component of field n.
func (s Segment) Value(n int) string { return s.Get(n, 0) }

// Components returns the components of the first repetition of the field.
func (f Field) Components() []string {
	if len(f.Reps) == 0 {
		return nil
	}
	return f.Reps[0]
}

// Segment returns the first segment named name, and whether there is one.
func (m *Message) Segment(name string) (Segment, bool) {
	for _, s := range m.Segments {
		if s.Name() == name {
			return s, true
		}
	}
	return Segment{}, false
}

// MSH returns the header segment.
func (m *Message) MSH() Segment { return m.Segments[0] }

// Type returns MSH-9 as "ORU^R01".
func (m *Message) Type() string {
	h := m.MSH()
	return h.Get(9, 0) + "^" + h.Get(9, 1)
}

// ControlID returns MSH-10.
func (m *Message) ControlID() string { return m.MSH().Value(10) }

// Parse parses one HL7 v2 message. Segments may be separated by CR, LF or CRLF (vendors
// differ). Text is converted to UTF-8 according to MSH-18 (UNICODE UTF-8, 8859/1,
// GB 18030 — the Chinese monitors' choice); unknown character sets are taken as UTF-8 when
// valid and as Latin-1 otherwise, never rejected, since the numbers are ASCII anyway.
func Parse(raw []byte) (*Message, error) {
	raw = bytes.TrimLeft(raw, "\r\n\t ")
	if len(raw) < 8 || string(raw[:3]) != "MSH" {
		return nil, ErrNoMSH
	}
	enc := encoding{field: raw[3], comp: '^', rep: '~', esc: '\\', sub: '&'}
	// MSH-2 holds the other encoding characters, in order; fewer than four is tolerated.
	chars := raw[4:]
	if i := bytes.IndexByte(chars, enc.field); i >= 0 {
		chars = chars[:i]
	}
	for i, c := range chars {
		switch i {
		case 0:
			enc.comp = c
		case 1:
			enc.rep = c
		case 2:
			enc.esc = c
		case 3:
			enc.sub = c
		}
	}
	if enc.field == '\r' || enc.field == '\n' || enc.field == enc.comp {
		return nil, fmt.Errorf("hl7: bad field separator %q", enc.field)
	}
	lines := bytes.FieldsFunc(raw, func(r rune) bool { return r == '\r' || r == '\n' })
	m := &Message{enc: enc}
	charset := ""
	for li, line := range lines {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		seg, err := parseSegment(line, enc, li == 0)
		if err != nil {
			return nil, fmt.Errorf("hl7: segment %d: %w", li+1, err)
		}
		if li == 0 {
			charset = seg.Value(18)
		}
		m.Segments = append(m.Segments, seg)
	}
	if len(m.Segments) == 0 || m.Segments[0].Name() != "MSH" {
		return nil, ErrNoMSH
	}
	if err := m.decodeText(charset); err != nil {
		return nil, err
	}
	return m, nil
}

func parseSegment(line []byte, enc encoding, isMSH bool) (Segment, error) {
	if len(line) < 3 {
		return Segment{}, fmt.Errorf("segment %q too short", line)
	}
	parts := bytes.Split(line, []byte{enc.field})
	var seg Segment
	for i, p := range parts {
		if isMSH && i == 1 {
			// MSH-1 is the field separator and MSH-2 the raw encoding characters:
			// neither is split nor unescaped.
			seg.Fields = append(seg.Fields, Field{Reps: [][]string{{string(enc.field)}}}, Field{Reps: [][]string{{string(p)}}})
			continue
		}
		seg.Fields = append(seg.Fields, parseField(p, enc))
	}
	name := seg.Name()
	if len(name) != 3 {
		return Segment{}, fmt.Errorf("bad segment name %q", name)
	}
	return seg, nil
}

func parseField(p []byte, enc encoding) Field {
	var f Field
	for _, rep := range bytes.Split(p, []byte{enc.rep}) {
		comps := bytes.Split(rep, []byte{enc.comp})
		out := make([]string, len(comps))
		for i, c := range comps {
			out[i] = unescape(c, enc)
		}
		f.Reps = append(f.Reps, out)
	}
	return f
}

// unescape resolves \F\ \S\ \T\ \R\ \E\ and \Xhh..\; a subcomponent separator is left
// in place (no PCD-01 field we read has subcomponents that matter).
func unescape(b []byte, enc encoding) string {
	if bytes.IndexByte(b, enc.esc) < 0 {
		return string(b)
	}
	var out []byte
	for i := 0; i < len(b); i++ {
		if b[i] != enc.esc {
			out = append(out, b[i])
			continue
		}
		j := bytes.IndexByte(b[i+1:], enc.esc)
		if j < 0 {
			out = append(out, b[i:]...) // unterminated: keep literally
			break
		}
		seq := b[i+1 : i+1+j]
		switch {
		case string(seq) == "F":
			out = append(out, enc.field)
		case string(seq) == "S":
			out = append(out, enc.comp)
		case string(seq) == "T":
			out = append(out, enc.sub)
		case string(seq) == "R":
			out = append(out, enc.rep)
		case string(seq) == "E":
			out = append(out, enc.esc)
		case len(seq) > 1 && seq[0] == 'X' && len(seq)%2 == 1:
			for k := 1; k+1 < len(seq); k += 2 {
				var v byte
				if _, err := fmt.Sscanf(string(seq[k:k+2]), "%02x", &v); err == nil {
					out = append(out, v)
				}
			}
		default:
			out = append(out, b[i:i+j+2]...) // unknown escape (formatting): keep
		}
		i += j + 1
	}
	return string(out)
}

func (m *Message) decodeText(charset string) error {
	cs := strings.ToUpper(strings.TrimSpace(charset))
	var conv func(string) (string, error)
	switch {
	case cs == "" || cs == "ASCII" || strings.Contains(cs, "UTF-8") || cs == "UNICODE":
		conv = nil
	case strings.Contains(cs, "8859/1") || cs == "8859-1":
		conv = charmap.ISO8859_1.NewDecoder().String
	case strings.Contains(cs, "GB") && (strings.Contains(cs, "18030") || strings.Contains(cs, "2312")):
		conv = simplifiedchinese.GB18030.NewDecoder().String
	}
	for si := range m.Segments {
		for fi := range m.Segments[si].Fields {
			for ri := range m.Segments[si].Fields[fi].Reps {
				comps := m.Segments[si].Fields[fi].Reps[ri]
				for ci, c := range comps {
					if isASCII(c) {
						continue
					}
					switch {
					case conv != nil:
						if s, err := conv(c); err == nil {
							comps[ci] = s
						}
					case !utf8.ValidString(c):
						s, _ := charmap.ISO8859_1.NewDecoder().String(c)
						comps[ci] = s
					}
				}
			}
		}
	}
	return nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
