package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"time"

	"lifeline/dicom/send"
)

func init() {
	registerCommand("send", "push DICOM files, folders or a DICOMDIR into the box (C-STORE)", runSend)
}

func runSend(args []string) int {
	fs := flag.NewFlagSet("send", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: lifeline send [flags] PATH...\n\nPATH is a DICOM file, a folder (read recursively) or a DICOMDIR.\n\nflags:")
		fs.PrintDefaults()
	}
	addr := fs.String("addr", "127.0.0.1:11112", "the box's DICOM SCP (host:port)")
	called := fs.String("aet", "LIFELINE", "the box's AE title (called AE)")
	calling := fs.String("calling-aet", "LIFELINESEND", "our AE title (calling AE)")
	timeout := fs.Duration("timeout", 60*time.Second, "longest wait for each response")
	tlsCA := fs.String("tls-ca", "", "use DICOM TLS, trusting the box's certificate from this PEM file")
	tlsName := fs.String("tls-server-name", "", "name expected in the box's certificate (default: host of -addr)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return exitUsage
	}
	if len(*called) > 16 || len(*calling) > 16 {
		fmt.Fprintln(os.Stderr, "lifeline send: AE titles have at most 16 characters")
		return exitUsage
	}
	opts := send.Options{Addr: *addr, CalledAE: *called, CallingAE: *calling, Timeout: *timeout,
		Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	if *tlsCA != "" {
		pem, err := os.ReadFile(*tlsCA)
		if err != nil {
			fmt.Fprintf(os.Stderr, "lifeline send: -tls-ca: %v\n", err)
			return exitUsage
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			fmt.Fprintf(os.Stderr, "lifeline send: -tls-ca: no certificate in %s\n", *tlsCA)
			return exitUsage
		}
		opts.TLS = &tls.Config{RootCAs: pool, ServerName: *tlsName, MinVersion: tls.VersionTLS12}
	}
	coll, err := send.Collect(fs.Args())
	if err != nil {
		fmt.Fprintf(os.Stderr, "lifeline send: %v\n", err)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	st, _ := os.Stderr.Stat()
	rep := send.NewReport(os.Stderr, st != nil && st.Mode()&os.ModeCharDevice != 0, coll.Instances)
	sendErr := send.Send(ctx, coll.Instances, opts, rep.Add)
	rep.Summary(coll.Skipped)
	if sendErr != nil {
		fmt.Fprintf(os.Stderr, "lifeline send: %v\n", sendErr)
	}
	for _, s := range coll.Skipped {
		if s.Broken {
			return exitFailure
		}
	}
	if sendErr != nil || rep.Failed() {
		return exitFailure
	}
	return exitOK
}
