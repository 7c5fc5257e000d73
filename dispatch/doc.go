// Package dispatch will hold the ambulance's report to the 120 dispatch centre: the
// JT/T 808 client (2019 and 2013 editions), blind-zone storage of positions, mission
// state and ETA.
//
// It is the next wave of work and is not built yet; a configured [dispatch] section
// shows on the box's status page as a service that is not built in this version.
package dispatch
