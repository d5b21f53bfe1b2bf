// What views share during one visit: the order the gallery shows, for previous / next.
export const session = {
  order: null, // sample ids in the gallery's current order
  galleryState: { sort: "novelty", verdict: "" },
  galleryScroll: 0,
};
