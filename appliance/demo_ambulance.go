package appliance

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"

	"lifeline/dispatch/jt808"
	"lifeline/hardware/gnss"
	"lifeline/hardware/modem"
	"lifeline/hardware/serialport"
)

// demoRoute crosses Guangzhou from Tianhe to the Provincial People's Hospital, the
// demo's receiving hospital.
var demoRoute = []gnss.Waypoint{
	{Lat: 23.1375, Lon: 113.3245}, {Lat: 23.1302, Lon: 113.3210}, {Lat: 23.1290, Lon: 113.3000},
	{Lat: 23.1275, Lon: 113.2850}, {Lat: 23.1270, Lon: 113.2760},
}

// demoHospital is where the demo ambulance drives.
var demoHospital = DestinationSection{Name: "广东省人民医院 Guangdong Provincial People's Hospital", Lat: 23.1270, Lon: 113.2760}

// demoSpeedKmh is the demo ambulance's speed through the city.
const demoSpeedKmh = 45

// demoAmbulance is the demo box's position side: a GNSS receiver and a 5G modem on
// pseudo-terminals, as they would be on USB serial adapters, and a JT/T 808 dispatch
// platform on loopback that logs every report.
type demoAmbulance struct {
	gnssLine, modemLine *serialport.SimulatedLine
	dispatch            net.Listener
	reportLog           string
}

// startDemoAmbulance creates the lines and the platform and sets the box's [gnss],
// [modem] and [dispatch] to them; run starts the devices.
func (d *demo) startDemoAmbulance() (*demoAmbulance, error) {
	a := &demoAmbulance{reportLog: filepath.Join(d.opts.DataDir, "dispatch-reports.jsonl")}
	var err error
	if a.gnssLine, err = serialport.OpenSimulatedLine(); err != nil {
		return nil, fmt.Errorf("demo GNSS receiver: %w", err)
	}
	if a.modemLine, err = serialport.OpenSimulatedLine(); err != nil {
		a.close()
		return nil, fmt.Errorf("demo modem: %w", err)
	}
	if a.dispatch, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		a.close()
		return nil, fmt.Errorf("demo dispatch platform: %w", err)
	}
	d.edge.GNSS = GNSSSection{Port: a.gnssLine.Path}
	d.edge.Modem = ModemSection{Port: a.modemLine.Path}
	d.edge.Dispatch.Server = a.dispatch.Addr().String()
	d.edge.Dispatch.TerminalID = "013800138000"
	d.edge.Dispatch.Destination = demoHospital
	return a, nil
}

// run plays the receiver, the modem and the platform until ctx ends.
func (a *demoAmbulance) run(ctx context.Context, log *slog.Logger) {
	defer a.close()
	reports, err := os.OpenFile(a.reportLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		log.Error("demo dispatch platform: report log", "err", err)
		return
	}
	defer reports.Close()
	platform := jt808.NewPlatform(jt808.PlatformConfig{ReportLog: reports, Log: log.With("device", "dispatch platform")})
	done := make(chan struct{}, 3)
	go func() {
		defer func() { done <- struct{}{} }()
		gnss.Simulate(ctx, a.gnssLine, gnss.SimConfig{Route: demoRoute, SpeedKmh: demoSpeedKmh, Loop: true})
	}()
	go func() {
		defer func() { done <- struct{}{} }()
		modem.Simulate(ctx, a.modemLine, modem.SimConfig{})
	}()
	go func() {
		defer func() { done <- struct{}{} }()
		if err := platform.Serve(ctx, a.dispatch); err != nil && ctx.Err() == nil {
			log.Error("demo dispatch platform stopped", "err", err)
		}
	}()
	for range 3 {
		<-done
	}
}

func (a *demoAmbulance) close() {
	for _, l := range []*serialport.SimulatedLine{a.gnssLine, a.modemLine} {
		if l != nil {
			l.Close()
		}
	}
	if a.dispatch != nil {
		a.dispatch.Close()
	}
}
