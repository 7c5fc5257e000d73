package appliance

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// ConfigError is a configuration problem: which file, which key, what is wrong. Its
// message is one line, as operators read it in a journal.
type ConfigError struct {
	File    string
	Key     string // dotted TOML key; empty when the problem is the file itself
	Problem string
}

func (e *ConfigError) Error() string {
	file := e.File
	if file == "" {
		file = "(defaults)"
	}
	if e.Key == "" {
		return fmt.Sprintf("config %s: %s", file, e.Problem)
	}
	return fmt.Sprintf("config %s: key %q: %s", file, e.Key, e.Problem)
}

// Duration is a TOML string such as "30s" or "5m".
type Duration struct{ time.Duration }

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration such as \"30s\" or \"5m\"", b)
	}
	d.Duration = v
	return nil
}

// MarshalText writes the duration back as a string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.Duration.String()), nil }

// loadTOML decodes the file at path into cfg, which holds the defaults. Keys the
// program does not know are errors: a misspelt key silently ignored is how a box
// ends up sending studies to the wrong place.
func loadTOML(path string, cfg any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return &ConfigError{File: path, Problem: "file does not exist"}
		}
		return &ConfigError{File: path, Problem: err.Error()}
	}
	md, err := toml.Decode(string(data), cfg)
	if err != nil {
		return tomlError(path, err)
	}
	if undecoded := md.Undecoded(); len(undecoded) > 0 {
		return &ConfigError{File: path, Key: undecoded[0].String(), Problem: "unknown key (misspelt, or not in this version)"}
	}
	return nil
}

func tomlError(path string, err error) error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		problem := pe.Message
		if pe.Position.Line > 0 {
			problem = fmt.Sprintf("line %d: %s", pe.Position.Line, problem)
		}
		return &ConfigError{File: path, Key: pe.LastKey, Problem: oneLine(problem)}
	}
	// Type mismatches come as "toml: line N (last key "a.b"): …".
	msg := strings.TrimPrefix(err.Error(), "toml: ")
	key := ""
	if i := strings.Index(msg, `(last key "`); i >= 0 {
		rest := msg[i+len(`(last key "`):]
		if j := strings.Index(rest, `")`); j >= 0 {
			key = rest[:j]
			msg = strings.TrimSpace(msg[:i] + rest[j+2:])
			msg = strings.TrimSuffix(strings.TrimSpace(strings.TrimSuffix(msg, ":")), ":")
			msg = strings.Replace(msg, " :", ":", 1)
		}
	}
	return &ConfigError{File: path, Key: key, Problem: oneLine(msg)}
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// checker collects the first problem found while validating a config.
type checker struct {
	file string
	err  error
}

func (c *checker) fail(key, format string, args ...any) {
	if c.err == nil {
		c.err = &ConfigError{File: c.file, Key: key, Problem: fmt.Sprintf(format, args...)}
	}
}

// hostPort checks a "host:port" listen or dial address.
func (c *checker) hostPort(key, addr string) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		c.fail(key, "%q is not a host:port address", addr)
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		c.fail(key, "%q: port %q is not a number from 0 to 65535", addr, port)
		return
	}
	if host == "" {
		c.fail(key, "%q has no host; write 127.0.0.1 for this machine only or 0.0.0.0 for every interface", addr)
	}
}

// httpsURL checks an https:// URL.
func (c *checker) httpsURL(key, raw string) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		c.fail(key, "%q is not a URL such as https://hub.example:8443", raw)
		return
	}
	if u.Scheme != "https" {
		c.fail(key, "%q: the hub is reached over https only (mutual TLS)", raw)
	}
}

// httpURL checks an http:// or https:// URL.
func (c *checker) httpURL(key, raw string) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		c.fail(key, "%q is not an http:// or https:// URL", raw)
	}
}

// aeTitle checks a DICOM application entity title (PS3.5: up to 16 characters of the
// default repertoire, no backslash or control characters, not all spaces).
func (c *checker) aeTitle(key, ae string) {
	trimmed := strings.TrimSpace(ae)
	if trimmed == "" || len(ae) > 16 {
		c.fail(key, "%q: an AE title has 1 to 16 characters", ae)
		return
	}
	for _, r := range ae {
		if r < 0x20 || r > 0x7e || r == '\\' {
			c.fail(key, "%q: an AE title may not contain %q", ae, r)
			return
		}
	}
}

func (c *checker) oneOf(key, value string, allowed ...string) {
	for _, a := range allowed {
		if value == a {
			return
		}
	}
	c.fail(key, "%q is not one of %s", value, strings.Join(allowed, ", "))
}

func (c *checker) positive(key string, v int) {
	if v <= 0 {
		c.fail(key, "must be greater than 0, got %d", v)
	}
}

func (c *checker) positiveDuration(key string, d Duration) {
	if d.Duration <= 0 {
		c.fail(key, "must be a positive duration, got %s", d.Duration)
	}
}

// tomlKeys lists the dotted keys a config struct accepts, for documentation tests.
func tomlKeys(t reflect.Type, prefix string) []string {
	var keys []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := strings.Split(f.Tag.Get("toml"), ",")[0]
		if name == "" || name == "-" {
			continue
		}
		ft := f.Type
		if ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct && ft != reflect.TypeOf(Duration{}) {
			keys = append(keys, tomlKeys(ft, prefix+name+".")...)
			continue
		}
		keys = append(keys, prefix+name)
	}
	return keys
}
