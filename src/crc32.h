/* crc32.h - CRC-32 as zip, PNG and the .sec format use it (IEEE 802.3, reflected polynomial
 * 0xEDB88320). */
#ifndef COCHLEA_CRC32_H
#define COCHLEA_CRC32_H

#include <stddef.h>
#include <stdint.h>

/* The CRC of buf[0 .. n) continuing from crc (0 to start): crc32_ieee(crc32_ieee(0, a), b) is
 * the CRC of a followed by b. The CRC of "123456789" is 0xCBF43926. */
uint32_t crc32_ieee(uint32_t crc, const void *buf, size_t n);

#endif
