package vitals

import (
	"fmt"
	"math"
	"strconv"
)

// Samples are a wave chunk's samples. In JSON they are an array of numbers in the
// shortest spelling that reads back as the same float32, with null where a sample is
// not a finite number (JSON has no NaN); null reads back as NaN.
type Samples []float32

// MarshalJSON implements json.Marshaler.
func (s Samples) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 2+len(s)*8)
	b = append(b, '[')
	for i, v := range s {
		if i > 0 {
			b = append(b, ',')
		}
		f := float64(v)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			b = append(b, "null"...)
			continue
		}
		b = strconv.AppendFloat(b, f, 'g', -1, 32)
	}
	return append(b, ']'), nil
}

// UnmarshalJSON implements json.Unmarshaler. encoding/json has checked that data is
// valid JSON before calling it, so only the shape is checked here: an array of numbers
// and nulls, at most MaxWaveSamples long.
func (s *Samples) UnmarshalJSON(data []byte) error {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '[' {
		return fmt.Errorf("samples: not an array")
	}
	out := (*s)[:0]
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == ']' {
		*s = out
		return nil
	}
	for {
		if len(out) == MaxWaveSamples {
			return fmt.Errorf("samples: more than %d", MaxWaveSamples)
		}
		j := i
		for j < len(data) && isNumberByte(data[j]) {
			j++
		}
		switch {
		case j > i:
			f, err := strconv.ParseFloat(string(data[i:j]), 32)
			if err != nil {
				return fmt.Errorf("samples: sample %d: %w", len(out), err)
			}
			out = append(out, float32(f))
		case j+4 <= len(data) && string(data[j:j+4]) == "null":
			out = append(out, float32(math.NaN()))
			j += 4
		default:
			return fmt.Errorf("samples: sample %d is not a number", len(out))
		}
		i = skipSpace(data, j)
		if i >= len(data) {
			return fmt.Errorf("samples: unterminated array")
		}
		if data[i] == ']' {
			*s = out
			return nil
		}
		if data[i] != ',' {
			return fmt.Errorf("samples: sample %d is not a number", len(out))
		}
		i = skipSpace(data, i+1)
	}
}

func isNumberByte(c byte) bool {
	return c >= '0' && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E'
}

func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
}
