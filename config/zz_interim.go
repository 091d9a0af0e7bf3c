package config

// Interim loader until the real one lands from the config branch.

import (
	"os"
	"strings"

	"go.yaml.in/yaml/v3"
)

func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c := Default()
	d := yaml.NewDecoder(strings.NewReader(string(b)))
	d.KnownFields(true)
	if err := d.Decode(c); err != nil && err.Error() != "EOF" {
		return nil, err
	}
	return c, nil
}

func (c *Config) Validate() error { return nil }

func (d *Delivery) ResolvePassword() (string, error) { return d.Password, nil }
