import { describe, expect, it } from 'vitest';
import { uint16Add, uint16Diff, uint16Gt, uint32Add, uint32Diff, uint32Gt } from '../../src/media/seq.ts';

describe('16-bit sequence numbers', () => {
  it.each([
    [65535, 1, 0],
    [65535, 2, 1],
    [0, -1, 65535],
    [1000, -2000, 64536],
    [65000, 1000, 464],
    [12, 0, 12],
  ])('uint16Add(%i, %i) wraps to %i', (a, b, sum) => {
    expect(uint16Add(a, b)).toBe(sum);
  });

  it.each([
    [0, 65535, 1],
    [65535, 0, -1],
    [5, 65530, 11],
    [65530, 5, -11],
    [100, 100, 0],
    [32767, 0, 32767],
    [0, 32767, -32767],
    // half range: ambiguous, reported as the negative end both ways
    [32768, 0, -32768],
    [0, 32768, -32768],
    [40000, 7232, -32768],
  ])('uint16Diff(%i, %i) is %i', (a, b, diff) => {
    expect(uint16Diff(a, b)).toBe(diff);
  });

  it('uint16Diff inverts uint16Add for every distance that is not the half range', () => {
    for (const base of [0, 1, 32767, 32768, 65534, 65535]) {
      for (let step = -32767; step <= 32767; step += 97) expect(uint16Diff(uint16Add(base, step), base)).toBe(step);
    }
  });

  it.each([
    [0, 65535, true],
    [65535, 0, false],
    [1, 65000, true],
    [10, 5, true],
    [5, 10, false],
    [7, 7, false],
    [32767, 0, true],
    [0, 32767, false],
    [32768, 0, false],
    [0, 32768, false],
  ])('uint16Gt(%i, %i) is %s', (a, b, greater) => {
    expect(uint16Gt(a, b)).toBe(greater);
  });
});

describe('32-bit timestamps', () => {
  it.each([
    [0xffffffff, 1, 0],
    [0xffffffff, 160, 159],
    [0, -1, 0xffffffff],
    [0xfffffff0, 0xffff, 0xffef],
    [0x7fffffff, 1, 0x80000000],
  ])('uint32Add(%i, %i) wraps to %i', (a, b, sum) => {
    expect(uint32Add(a, b)).toBe(sum);
  });

  it.each([
    [0, 0xffffffff, 1],
    [0xffffffff, 0, -1],
    [80, 0xffffffb0, 160],
    [0xffffffb0, 80, -160],
    [0x7fffffff, 0, 0x7fffffff],
    [0, 0x7fffffff, -0x7fffffff],
    [0x80000000, 0, -0x80000000],
    [0, 0x80000000, -0x80000000],
  ])('uint32Diff(%i, %i) is %i', (a, b, diff) => {
    expect(uint32Diff(a, b)).toBe(diff);
  });

  it('uint32Diff inverts uint32Add across the wrap', () => {
    for (const base of [0, 1, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff]) {
      for (const step of [-0x7fffffff, -65535, -160, -1, 0, 1, 160, 65535, 0x7fffffff]) {
        expect(uint32Diff(uint32Add(base, step), base)).toBe(step);
      }
    }
  });

  it.each([
    [0, 0xffffffff, true],
    [0xffffffff, 0, false],
    [160, 0xffffff60, true],
    [0x7fffffff, 0, true],
    [0x80000000, 0, false],
    [0, 0x80000000, false],
    [42, 42, false],
  ])('uint32Gt(%i, %i) is %s', (a, b, greater) => {
    expect(uint32Gt(a, b)).toBe(greater);
  });
});
