package telemetry

import "testing"

func TestParseEndpoint(t *testing.T) {
	for in, want := range map[string]Endpoint{
		"/dev/ttyUSB0":                   {Kind: EndpointSerial, Device: "/dev/ttyUSB0"},
		"tcp://127.0.0.1:2575":           {Kind: EndpointListen, Addr: "127.0.0.1:2575"},
		"tcp://:2575":                    {Kind: EndpointListen, Addr: ":2575"},
		"tcp-connect://gateway.icu:2575": {Kind: EndpointDial, Addr: "gateway.icu:2575"},
	} {
		got, err := ParseEndpoint(in)
		if err != nil || got != want {
			t.Errorf("ParseEndpoint(%q) = %+v, %v; want %+v", in, got, err, want)
			continue
		}
		if got.String() != in {
			t.Errorf("%q written back as %q", in, got.String())
		}
		if got.Network() != (want.Kind != EndpointSerial) {
			t.Errorf("%q: Network() = %v", in, got.Network())
		}
	}
	for _, in := range []string{"", "tcp://", "tcp://127.0.0.1", "tcp-connect://:2575", "udp://127.0.0.1:2575", "tcp://127.0.0.1:"} {
		if got, err := ParseEndpoint(in); err == nil {
			t.Errorf("ParseEndpoint(%q) = %+v, accepted", in, got)
		}
	}
}
