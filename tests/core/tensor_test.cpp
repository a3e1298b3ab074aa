#include <gtest/gtest.h>

#include "core/tensor.hpp"

using namespace r1;

TEST(Shape, CountsElementsAndPrints) {
  const Shape s{2, 3, 4};
  EXPECT_EQ(s.rank(), 3);
  EXPECT_EQ(s.numel(), 24);
  EXPECT_EQ(s[-1], 4);
  EXPECT_EQ(s.str(), "[2, 3, 4]");
  EXPECT_EQ(Shape{}.numel(), 1);
  EXPECT_EQ((Shape{5, 0}).numel(), 0);
}

TEST(Shape, RejectsTooManyDimensions) {
  EXPECT_THROW((Shape{1, 1, 1, 1, 1, 1, 1}), Error);
}

TEST(Tensor, HostZerosIsZeroAndKnowsItsPlace) {
  Tensor t = Tensor::host_zeros({3, 5}, DType::bf16);
  EXPECT_TRUE(t.on_host());
  EXPECT_EQ(t.nbytes(), 30u);
  EXPECT_EQ(t.str(), "bf16[3, 5] on host");
  for (int i = 0; i < 15; ++i) EXPECT_EQ(t.data<bf16>()[i].bits, 0);
}

TEST(Tensor, TypedAccessChecksTheDtype) {
  Tensor t = Tensor::host({4}, DType::f32);
  EXPECT_THROW(t.data<bf16>(), Error);
}

TEST(Tensor, ViewAndSliceShareStorage) {
  Tensor t = Tensor::host({4, 3}, DType::f32);
  for (int i = 0; i < 12; ++i) t.data<float>()[i] = static_cast<float>(i);
  Tensor rows = t.slice(1, 3);
  EXPECT_EQ(rows.shape(), (Shape{2, 3}));
  EXPECT_EQ(rows.data<float>()[0], 3.0f);
  Tensor flat = rows.view({6});
  flat.data<float>()[5] = -1.0f;
  EXPECT_EQ(t.data<float>()[8], -1.0f);
  EXPECT_THROW(t.view({5}), Error);
  EXPECT_THROW(t.slice(2, 5), Error);
}

TEST(Tensor, ReinterpretReadsTheSameBytes) {
  Tensor t = Tensor::host({2, 2}, DType::f32);
  Tensor bits = t.slice(1, 2).reinterpret(DType::i32);
  bits.data<std::int32_t>()[1] = 0x3f800000;  // 1.0f
  EXPECT_EQ(bits.dtype(), DType::i32);
  EXPECT_EQ(t.data<float>()[3], 1.0f);
  EXPECT_THROW(t.reinterpret(DType::bf16), Error);
}

TEST(Tensor, CopyBetweenHostTensorsChecksSizes) {
  Tensor a = Tensor::host({6}, DType::f32), b = Tensor::host({2, 3}, DType::f32);
  for (int i = 0; i < 6; ++i) a.data<float>()[i] = 1.5f * i;
  copy(b, a);
  EXPECT_EQ(b.data<float>()[5], 7.5f);
  EXPECT_THROW(copy(Tensor::host({5}, DType::f32), a), Error);
  EXPECT_THROW(copy(Tensor::host({6}, DType::bf16), a), Error);
}

TEST(Tensor, StorageKeepsItsAllocatorAlive) {
  Tensor t;
  {
    auto alloc = std::make_shared<HostAllocator>();
    t = Tensor::empty({16}, DType::f32, alloc);
  }
  t.data<float>()[15] = 2.0f;  // the allocator is still alive through the storage
  EXPECT_EQ(t.data<float>()[15], 2.0f);
}
