package scsi

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// FileReservationStore is a ReservationStore in one file at Path. Save
// writes a temporary file in the same directory, syncs it and renames it
// over Path, then syncs the directory, so a crash leaves the old state or
// the new one; Save(nil) removes the file. The directory must exist.
type FileReservationStore struct {
	Path string
}

// Load implements ReservationStore.
func (s FileReservationStore) Load() ([]byte, error) {
	b, err := os.ReadFile(s.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return b, nil
}

// Save implements ReservationStore.
func (s FileReservationStore) Save(state []byte) error {
	dir := filepath.Dir(s.Path)
	if state == nil {
		if err := os.Remove(s.Path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return syncDir(dir)
	}
	f, err := os.CreateTemp(dir, filepath.Base(s.Path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(state)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, s.Path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("save persistent reservations to %s: %w", s.Path, err)
	}
	return syncDir(dir)
}

// syncDir makes a rename or removal in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
