// Command webhookload posts one AdmissionReview to a webhook, over and over, from a number of
// concurrent clients, the way the kube-apiserver calls webhooks: Go's HTTP client on kept-alive
// TLS connections. It prints the latency of every request and the time the run took, as JSON.
//
// `make bench` uses it so that what is measured is the webhook, not a Python load generator
// sharing the same cores.
package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"time"
)

func main() {
	url := flag.String("url", "", "the webhook's URL")
	caFile := flag.String("ca", "", "PEM file of the CA to trust")
	bodyFile := flag.String("body", "", "file holding the AdmissionReview to post")
	total := flag.Int("n", 2000, "requests to measure")
	concurrency := flag.Int("c", 1, "requests in flight")
	flag.Parse()

	ca, err := os.ReadFile(*caFile)
	check(err)
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		check(fmt.Errorf("no certificate in %s", *caFile))
	}
	body, err := os.ReadFile(*bodyFile)
	check(err)
	client := &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
			MaxIdleConnsPerHost: *concurrency,
			MaxConnsPerHost:     *concurrency,
		},
	}
	post := func() time.Duration {
		started := time.Now()
		response, err := client.Post(*url, "application/json", bytes.NewReader(body))
		check(err)
		defer response.Body.Close()
		var review struct {
			Response struct {
				Allowed bool `json:"allowed"`
			} `json:"response"`
		}
		raw, err := io.ReadAll(response.Body)
		check(err)
		check(json.Unmarshal(raw, &review))
		if response.StatusCode != http.StatusOK || !review.Response.Allowed {
			check(fmt.Errorf("HTTP %d, not allowed: %s", response.StatusCode, raw))
		}
		return time.Since(started)
	}
	run := func(each int) ([]float64, float64) {
		var mu sync.Mutex
		var wg sync.WaitGroup
		latencies := make([]float64, 0, each**concurrency)
		started := time.Now()
		for i := 0; i < *concurrency; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := 0; j < each; j++ {
					took := post()
					mu.Lock()
					latencies = append(latencies, took.Seconds())
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		return latencies, time.Since(started).Seconds()
	}
	run(1) // open every connection first: the TLS handshakes are not what is measured
	latencies, elapsed := run(*total / *concurrency)
	check(json.NewEncoder(os.Stdout).Encode(map[string]any{"latencies": latencies, "elapsed": elapsed}))
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "webhookload:", err)
		os.Exit(1)
	}
}
