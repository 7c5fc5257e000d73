// Package dispatch is the ambulance's report to the 120 dispatch centre, on the box:
// a Reporter that turns GNSS fixes into JT/T 808 location reports (package jt808),
// keeps them in a durable backlog through blind zones and sends them live or in
// batches, answers dispatch's commands (parameters, location query, temporary
// tracking, crew text messages), and the Mission state machine with its ETA.
//
// The appliance wires it as:
//
//	mission, _ := dispatch.NewMission(store, time.Now())
//	rep, _ := dispatch.NewReporter(dispatch.Config{Server: …, Edition: jt808.Edition2019,
//		Phone: cfg.TerminalID, Store: store, Mission: mission,
//		Signal: modem.Signal, OnText: showToCrew})
//	receiver := gnss.New(gnss.Config{Port: …, OnFix: func(f gnss.Fix) { rep.Offer(f) }})
//	supervisor.Add(service.Service{Name: "gnss", Run: receiver.Run, Status: …})
//	supervisor.Add(service.Service{Name: "dispatch", Run: rep.Run, Status: …})
//
// and shows mission.Status(now) (state, destination, ETA) on the status page and to
// the hub.
package dispatch
